"""local/summarize.py: where the k2 WER at the Kaldi backend's setting is read from."""
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _summarize():
    spec = importlib.util.spec_from_file_location("summarize", REPO / "local" / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _decode_dir(tmp_path: Path, name: str, summary: dict, sweep: dict = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(summary))
    if sweep is not None:
        (d / "sweep.json").write_text(json.dumps(sweep))
    return d


def test_k2_wer_at_reads_sweep_extra_setting_or_own_setting(tmp_path):
    k2_wer_at = _summarize().k2_wer_at
    dev = _decode_dir(tmp_path, "dev", {"setting": {"lm_weight": 12.0, "wip": 0.5}, "wer": 40.0},
                      {"settings": {"10_0": {"lm_weight": 10.0, "wip": 0.0, "wer": 41.5},
                                    "10_0.5": {"lm_weight": 10.0, "wip": 0.5, "wer": 39.0}}})
    test = _decode_dir(tmp_path, "test", {"setting": {"lm_weight": 12.0, "wip": 0.5}, "ctm_wer": 30.0, "wer": 30.1,
                                          "extra_settings": {"10_0": {"lm_weight": 10.0, "wip": 0.0, "wer": 33.3}}})
    own = _decode_dir(tmp_path, "own", {"setting": {"lm_weight": 10.0, "wip": 0.0}, "ctm_wer": 25.0, "wer": 25.1})
    assert k2_wer_at(dev, 10.0) == 41.5  # the sweep's penalty-0 entry, not the 0.5 one
    assert k2_wer_at(test, 10.0) == 33.3  # a test set's extra setting
    assert k2_wer_at(own, 10.0) == 25.0  # the decode's own setting: the CTM (sclite) WER
    assert k2_wer_at(dev, 13.0) is None and k2_wer_at(test, 12.0) is None


def test_stage_times_count_side_by_side_commands_once(tmp_path):
    stage_times = _summarize().stage_times
    rows = [
        "7\t100\tdone\tdecode test_swb\t1000\t1100",
        "7\t70\tdone\tdecode test_ch\t1050\t1120",  # side by side with test_swb: wall 1000-1120
        "7\t30\tdone\tdecode dev_kaldi\t1200\t1230",  # after a gap
        "6\t40\tdone\tmkgraph",  # an older row without start and end: its seconds count
        "6\t1\tskipped\tlm train",
        "5\t500\tdone\ttrain-tri\t0\t500",
        "5\t200\tdone\ttrain-tri\t600\t800",  # redone: the last run counts
    ]
    (tmp_path / "times.tsv").write_text("\n".join(rows) + "\n")
    assert stage_times(tmp_path / "times.tsv") == {"5": 200.0, "6": 40.0, "7": 150.0}
