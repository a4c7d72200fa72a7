"Display by type dispatch does not depend on which module the user imported first"
import subprocess, sys, textwrap

def test_plot_top_losses_reaches_ours_whatever_the_import_order():
    # fasttransform and fewshot_fastai imported before fastai.interpret: fastai's catch-all used to win then, and
    # plot_top_losses of a pair learner raised "not implemented for SiameseImage" (found through test order)
    code = textwrap.dedent('''
        import inspect, torch
        from fasttransform import Pipeline
        import fewshot_fastai as ff
        from fastai.interpret import plot_top_losses
        from fewshot_fastai.data.pairs import SiameseImage
        from fewshot_fastai.data.show import EpisodeQueries
        x = SiameseImage(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1))
        for first in [x, EpisodeQueries(torch.zeros(1, 1, 4, 4))]:
            f, _ = plot_top_losses.resolve_method((first, None, [], None, None, None))   # plum's public lookup
            print(inspect.getmodule(f).__name__)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['fewshot_fastai.data.show'] * 2, out.stdout
