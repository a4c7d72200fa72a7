"""`fewshot-fastai classify | verify | similarity | cam`: a saved model on the user's images."""
from pathlib import Path
from ..inference import SupportSet, image_batch
from ..interpret.pairs import similarity_maps
from ..interpret.show import show_pair_cam
from .common import UserError, check_out, writing_run, model, support, images, save_figure

__all__ = ['classify', 'verify', 'similarity', 'cam']

def classify(a) -> list[dict]:
    learn = model(a.model)
    sup = support(a.support)
    queries = images(a.queries)
    labels, scores = SupportSet(learn, sup, method=a.method).classify(queries, progress=not (a.json or a.csv))
    return [dict(query=str(q), label=l, score=round(float(s.max()), 4)) for q, l, s in zip(queries, labels, scores)]

def verify(a) -> dict:
    learn = model(a.model)
    if learn.model_config.kind != 'siamese': raise UserError(f'{a.model}: verify needs a pair (siamese) model')
    for p in (a.a, a.b):
        if not Path(p).is_file(): raise UserError(f'{p}: no such image file')
    same, p = learn.predict_pair(a.a, a.b)
    return dict(a=a.a, b=a.b, same=bool(same), probability=round(float(p), 4))

def similarity(a) -> dict:
    for p in (a.a, a.b):
        if not Path(p).is_file(): raise UserError(f'{p}: no such image file')
    out = check_out(a.out, a.force, {'the model': a.model, 'image': a.a, 'image ': a.b})
    learn = model(a.model)
    pm = similarity_maps(learn, [a.a], [a.b], method=a.method, eigen_smooth=a.eigen_smooth, aug_smooth=a.aug_smooth)
    x = image_batch(learn.dls, [a.a, a.b])
    fig = show_pair_cam(x[0], x[1], pm.a[0], pm.b[0], float(pm.score[0]))[0].figure
    name = f'similarity_{Path(a.a).stem}_{Path(a.b).stem}.png'
    with writing_run(out, 'similarity') as tmp: save_figure(fig, tmp/name)
    return dict(png=str(out/name), method=pm.method, score=round(float(pm.score[0]), 4))

def cam(a) -> list[dict]:
    "For each image: its best support class, and the similarity maps against that class's first support image"
    out = check_out(a.out, a.force, {'the model': a.model, 'the support folder': a.support, **{f'image{" "*i}': p for i, p in enumerate(a.images)}})
    learn = model(a.model)
    sup = support(a.support)
    files = images(a.images)
    labels, _ = SupportSet(learn, sup).classify(files)
    res = []
    with writing_run(out, 'cam') as tmp:
        for img, lab in zip(files, labels):
            ref = sup[lab][0]
            pm = similarity_maps(learn, [img], [ref], method=a.method, eigen_smooth=a.eigen_smooth, aug_smooth=a.aug_smooth)
            x = image_batch(learn.dls, [img, ref])
            fig = show_pair_cam(x[0], x[1], pm.a[0], pm.b[0], float(pm.score[0]))[0].figure
            name = f'cam_{len(res):03d}_{img.stem}.png'   # numbered: a/x.png and b/x.png never overwrite each other
            save_figure(fig, tmp/name)
            res.append(dict(image=str(img), label=lab, png=str(out/name), method=pm.method))
    return res
