"""Decoding: n-gram LMs, HCLG graphs, likelihood sources, the k2 and Kaldi decoders, word times.

Modules (one concept each):

- :mod:`asr_bl.decode.lm`        LM training over a lang dir's vocabulary, pruning to a target size,
  perplexity, G.fst (CLI ``asr_bl-lm``);
- :mod:`asr_bl.decode.graph`     HCLG in Kaldi's mkgraph order and its k2 form; the graph dir
  (CLI ``asr_bl-mkgraph``);
- :mod:`asr_bl.decode.acoustic`  likelihood sources: GMM dirs and network dirs -> (T, num_pdfs);
- :mod:`asr_bl.decode.decoders`  the one decoder interface, k2 and Kaldi backends;
- :mod:`asr_bl.decode.lattice`   LM weight x insertion penalty sweeps, n-best LM rescoring (k2);
- :mod:`asr_bl.decode.ctm`       word times from the best path;
- :mod:`asr_bl.decode.inputs`    audio files / manifests / recipe sets -> cuts;
- :mod:`asr_bl.decode.pipeline`  a whole set: decode, choose the setting, write hyps, CTM, WER
  (CLI ``asr_bl-decode``).

Nothing here imports k2 or the Kaldi bindings at import time; the backends import them when built.
"""
