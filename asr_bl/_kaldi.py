"""The one place that imports the Next-gen Kaldi bindings, in a safe order.

kaldi-hmm-gmm 1.1.4 was built against the OpenFst of kaldifst 1.7.x. With kaldifst 1.8.x it rejects
FSTs ("incompatible constructor arguments"), and ``import kaldifst`` before ``import kaldi_hmm_gmm``
hangs. requirements.txt pins 1.7.17; this module also refuses other versions with a clear error
instead of a hang, and imports kaldi_hmm_gmm first.

Use ``kaldi_hmm_gmm, kaldifst = import_kaldi()`` rather than importing either directly.
"""
from importlib import metadata
from typing import Any, Tuple

SUPPORTED_KALDIFST = "1.7."


def import_kaldi() -> Tuple[Any, Any]:
    """Return the modules ``(kaldi_hmm_gmm, kaldifst)``, checked and imported in a safe order."""
    try:
        version = metadata.version("kaldifst")
    except metadata.PackageNotFoundError as e:
        raise ImportError(
            "kaldifst is not installed; install the project's pins: "
            "pip install -r requirements.txt (kaldifst==1.7.17, kaldi-hmm-gmm==1.1.4)"
        ) from e
    if not version.startswith(SUPPORTED_KALDIFST):
        raise ImportError(
            f"kaldifst {version} is installed, but kaldi-hmm-gmm 1.1.4 needs kaldifst 1.7.x "
            "(1.8.x hangs on import and rejects FSTs). Fix: pip install kaldifst==1.7.17"
        )
    import kaldi_hmm_gmm  # noqa: F401  (first: see module docstring)
    import kaldifst

    return kaldi_hmm_gmm, kaldifst
