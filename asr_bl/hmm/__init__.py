"""GMM-HMM for the hybrid system (Kaldi's recipe, on kaldi-hmm-gmm + our own decision tree).

Modules:

- :mod:`asr_bl.hmm.lang`   lexicon -> lang directory (phones, words, topology, L.fst, L_disambig.fst);
- :mod:`asr_bl.hmm.feats`  MFCC + Δ + ΔΔ with per-side CMN on the network's frame grid;
- :mod:`asr_bl.hmm.tree`   the decision tree, one layer per module: statistics, questions, the tree
  and its Kaldi format, the builder;
- :mod:`asr_bl.hmm.model`  model container, transition-id tables, convert-ali;
- :mod:`asr_bl.hmm.train`  the shard worker (on :class:`asr_bl.parallel.ShardPool`), the GMM update,
  the training loops: flat-start monophones, triphones, alignment;
- :mod:`asr_bl.hmm.export` Kaldi text archives, CTM, pdf counts, cuts with ``pdf_ali``/``phone_ali``.

The command line is ``asr_bl-gmm`` (:mod:`asr_bl.bin.gmm`). Kaldi bindings are imported only when
used, through :func:`asr_bl._kaldi.import_kaldi`.
"""
