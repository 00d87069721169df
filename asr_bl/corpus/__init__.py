"""The embedded synthetic telephone corpus (``synth``): TTS engines, channel simulation, text,
planning and building. Entry point: :func:`asr_bl.corpus.build.build_corpus` or the CLI
``python -m asr_bl.bin.make_corpus``."""
from asr_bl.corpus.build import CORPUS_NAME, PARTS, SIZES, CorpusConfig, build_corpus

__all__ = ["CORPUS_NAME", "PARTS", "SIZES", "CorpusConfig", "build_corpus"]
