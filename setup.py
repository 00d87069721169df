"""asr_bl: a Kaldi-style hybrid ASR toolkit whose acoustic models are Big-Little Nets."""
from setuptools import find_packages, setup

setup(
    name="asr_bl",
    version="0.1.0",
    description="Hybrid HMM/Big-Little-Net speech recognition and bL-Net vision models",
    packages=find_packages(include=["asr_bl", "asr_bl.*"]),
    python_requires=">=3.9",
    # Runtime requirements are loose so the library also installs on torch 2.x / Python 3.12;
    # the reproducible environment is requirements.txt (see tools/setup_env.sh).
    install_requires=["torch>=1.13", "numpy", "tqdm"],
    entry_points={
        "console_scripts": [
            "asr_bl-flops=asr_bl.bin.flops:main",
            "asr_bl-make-corpus=asr_bl.bin.make_corpus:main",
            "asr_bl-prepare=asr_bl.bin.prepare:main",
            "asr_bl-features=asr_bl.bin.features:main",
            "asr_bl-gmm=asr_bl.bin.gmm:main",
            "asr_bl-imagenet=asr_bl.vision.train:main",
            "asr_bl-score=asr_bl.bin.score:main",
            "asr_bl-lm=asr_bl.bin.lm:main",
            "asr_bl-mkgraph=asr_bl.bin.mkgraph:main",
            "asr_bl-decode=asr_bl.bin.decode:main",
            "asr_bl-train=asr_bl.bin.train:main",
            "asr_bl-validate=asr_bl.bin.validate:main",
        ]
    },
)
