"""asr_bl: hybrid HMM / Big-Little-Net speech recognition, and the paper's bL vision models.

Importing the package is cheap and safe everywhere (torch 2.x, Python 3.12, no k2): heavy or
optional dependencies (k2, kaldi_hmm_gmm, kaldifst, lhotse) are imported by the sub-modules that
need them, and the Kaldi bindings only through :mod:`asr_bl._kaldi`.
"""
__version__ = "0.1.0"
