"""asr_bl-prepare: Lhotse manifests for Switchboard-1 + Fisher English + Hub5'00 (the LDC corpora).

Writes ``<out-dir>/{corpus}_recordings_{part}.jsonl.gz`` and ``{corpus}_supervisions_{part}.jsonl.gz``
for the parts train (SWB minus dev + Fisher, duplicates capped), dev (first 4000 SWB utterances),
test_swb and test_ch (Hub5'00). With --data-dir, also the lexicon (MSU dictionary + CMUdict for the
training words it lacks; lexicon_oov.txt lists the rest), the LM texts lm_text.txt / lm_dev.txt and
Hub5'00's eval2000.stm / eval2000.glm. Without LDC corpora, use asr_bl-make-corpus (the embedded corpus).
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.bin import UsageError, add_force, add_num_jobs, add_verbose, run_tool
from asr_bl.data.ldc import LdcLayoutError, LdcPrepConfig, prepare_ldc
from asr_bl.data.normalize import TrainingTextConfig
from asr_bl.data.sphere import SPHERE_DECODERS, SphereDecoderError
from asr_bl.data.swbd_dict import DictionaryError
from asr_bl.scoring.glm import GlmFormatError
from asr_bl.scoring.trans import TranscriptFormatError

PROG = "asr_bl-prepare"

EPILOG = """\
expected layouts (LDC catalogue ids):
  --swbd DIR           Switchboard-1 Release 2 (LDC97S62): DIR/**/sw0NNNN.sph
  --swbd-text DIR      MS98 transcripts: DIR/NN/NNNN/swNNNN{A,B}-ms98-a-trans.text and, for
                       --data-dir, the MSU dictionary DIR/sw-ms98-dict.text
                       (default: DIR/swb_ms98_transcriptions inside --swbd, if present)
  --fisher DIR         DIR/LDC2004S13/.../audio/NNN/fe_03_NNNNN.sph and DIR/LDC2005S13/...
  --fisher-text DIR    DIR/LDC2004T19/{data/trans/NNN/fe_03_NNNNN.txt, doc/*_calldata.tbl}, LDC2005T19
                       (default: the --fisher directory)
  --eval2000 DIR       DIR/LDC2002S09/hub5e_00/english/{sw,en}_NNNN.sph
  --eval2000-text DIR  DIR/LDC2002T43/reference/english/{sw,en}_NNNN.txt (default: --eval2000),
                       with --data-dir also DIR/LDC2002T43/reference/hub5e00.english.000405.stm
                       and DIR/LDC2002T43/reference/en20000405_hub5.glm

.sph audio (shorten-compressed in LDC97S62 and LDC2002S09) is read through sph2pipe when it is on
PATH; otherwise the desphere package decodes each file once into FLAC under --audio-cache.

example:
  asr_bl-prepare --swbd /data/LDC97S62 --swbd-text /data/swb_ms98_transcriptions \\
      --fisher /data/fisher --eval2000 /data/hub5 --out-dir data/manifests --data-dir data
"""


def optional_path(text: str) -> Optional[Path]:
    """A path argument where an empty string (an unset shell variable) means "not given"."""
    return Path(text) if text.strip() else None


def get_parser() -> argparse.ArgumentParser:
    defaults = LdcPrepConfig()
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--swbd", type=Path, required=True, help="Switchboard-1 audio (LDC97S62) directory")
    parser.add_argument("--swbd-text", type=optional_path, default=None, help="MS98 transcript directory")
    for flag, what in (("--fisher", "directory holding the Fisher audio packages"),
                       ("--fisher-text", "directory holding the Fisher transcript packages"),
                       ("--eval2000", "directory holding LDC2002S09 (Hub5'00 audio)"),
                       ("--eval2000-text", "directory holding LDC2002T43 (references)")):
        parser.add_argument(flag, type=optional_path, default=None, help=what)
    parser.add_argument("--out-dir", type=Path, default=Path("data/manifests"),
                        help="where manifests go (default: %(default)s)")
    parser.add_argument("--corpus", default="swbd", help="manifest name prefix (default: %(default)s)")
    parser.add_argument("--num-dev", type=int, default=defaults.num_dev,
                        help="SWB utterances held out as dev, Kaldi-style (default: %(default)s)")
    parser.add_argument("--max-duplicates", type=int, default=defaults.max_duplicates,
                        help="keep at most this many utterances per identical transcript in train "
                             "(default: %(default)s)")
    parser.add_argument("--acronyms", choices=["letters", "join"], default=defaults.text.acronyms,
                        help="acronyms as single letters 'i b m' or one token 'i_b_m' (default: %(default)s)")
    parser.add_argument("--data-dir", type=optional_path, default=None,
                        help="also write lexicon.txt, lexicon_oov.txt, lm_text.txt, lm_dev.txt (and with "
                             "--eval2000, eval2000.stm, eval2000.glm) here")
    parser.add_argument("--phone-set", choices=["msu", "cmu"], default=defaults.phone_set,
                        help="lexicon phones: the MSU dictionary's own, or mapped onto CMUdict's 39 "
                             "(default: %(default)s)")
    parser.add_argument("--lm-drop-noise", action="store_true",
                        help="leave [noise]/[laughter]/[vocalized-noise] out of the LM text (Kaldi keeps them)")
    parser.add_argument("--sphere-decoder", choices=list(SPHERE_DECODERS), default="auto",
                        help="SPHERE decoder: auto = sph2pipe when on PATH, else desphere (default: %(default)s)")
    parser.add_argument("--audio-cache", type=optional_path, default=None,
                        help="where desphere writes the decoded FLAC files (default: <out-dir>/audio)")
    add_num_jobs(parser, what="parallel audio probes (sph2pipe) or decoders (desphere)")
    add_force(parser, "the manifests are complete and up to date")
    add_verbose(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    swbd_text = args.swbd_text
    if swbd_text is None:
        candidate = args.swbd / "swb_ms98_transcriptions"
        if not candidate.is_dir():
            raise UsageError(f"{candidate}: --swbd-text not given and this directory does not exist; pass the "
                             "MS98 transcript directory (swb_ms98_transcriptions)")
        swbd_text = candidate
    config = LdcPrepConfig(
        num_dev=args.num_dev, max_duplicates=args.max_duplicates, text=TrainingTextConfig(acronyms=args.acronyms),
        phone_set=args.phone_set, lm_keep_noise=not args.lm_drop_noise,
    )
    try:
        written = prepare_ldc(
            args.out_dir, args.swbd, swbd_text, fisher_dir=args.fisher, eval2000_dir=args.eval2000,
            corpus=args.corpus, config=config, fisher_text_dir=args.fisher_text,
            eval2000_text_dir=args.eval2000_text, num_jobs=args.num_jobs, force=args.force,
            data_dir=args.data_dir, sphere_decoder=args.sphere_decoder, audio_cache_dir=args.audio_cache,
        )
    except (LdcLayoutError, DictionaryError, GlmFormatError, TranscriptFormatError, SphereDecoderError) as e:
        raise UsageError(str(e)) from e
    for path in written:
        print(path)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_tool(get_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
