"""Lang preparation: phone/word tables, disambiguation, topology, L.fst through Kaldi's compiler."""
import numpy as np
import pytest

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.lang import (
    LangConfig,
    load_lang,
    make_topology_text,
    prepare_lang,
    read_lexicon,
    read_msu_lexicon,
    write_lang,
)
from asr_bl.hmm.model import TransitionTables, phone_segments

khg, kaldifst = import_kaldi()

LEXICON = """\
the DH AH
the DH IY
a AH
cat K AE T
cats K AE T S
at AE T
sat S AE T
mat M AE T
red R EH D
read R EH D
read R IY D
"""


@pytest.fixture()
def lang(tmp_path):
    p = tmp_path / "lexicon.txt"
    p.write_text(LEXICON)
    return prepare_lang(read_lexicon(p))


def test_phone_and_word_tables(lang):
    assert lang.phones[0] == "<eps>"
    assert lang.phones[1:5] == ["sil", "spn", "nsn", "lau"]
    assert lang.silence_phone_ids == [1, 2, 3, 4]
    speech = [lang.phones[i] for i in lang.nonsilence_phone_ids]
    assert speech == sorted({"DH", "AH", "IY", "K", "AE", "T", "S", "M", "R", "EH", "D"})
    # Real phones are contiguous from 1; disambiguation symbols come last.
    assert lang.real_phone_ids == list(range(1, 1 + 4 + len(speech)))
    assert all(lang.phones[i].startswith("#") for i in lang.disambig_phone_ids)
    assert lang.words[0] == "<eps>" and lang.words[-3:] == ["#0", "<s>", "</s>"]
    assert {"<unk>", "!sil", "[noise]", "[laughter]"} <= set(lang.words)
    assert lang.words_to_ids(["the", "zebra"]) == [lang.word_to_id["the"], lang.word_to_id["<unk>"]]


def test_disambiguation_symbols_for_homophones_and_prefixes(lang):
    # "cat" (K AE T) is a prefix of "cats"; "red"/"read" share R EH D -> #1, #2 needed.
    assert lang.num_disambig == 2
    fst = lang.lexicon_fst(with_disambig=True)
    labels = set()
    for state in range(fst.num_states):
        for arc in kaldifst.ArcIterator(fst, state):
            labels.add(arc.ilabel)
    p2i = lang.phone_to_id
    assert {p2i["#0"], p2i["#1"], p2i["#2"]} <= labels
    plain = lang.lexicon_fst(with_disambig=False)
    plain_labels = {arc.ilabel for s in range(plain.num_states) for arc in kaldifst.ArcIterator(plain, s)}
    assert not plain_labels & set(lang.disambig_phone_ids)


def test_topology_text_parses_with_3_and_5_states():
    text = make_topology_text([5, 6, 7], [1, 2], 3, 5)
    topo = khg.HmmTopology()
    topo.read(text)
    assert sorted(topo.phones) == [1, 2, 5, 6, 7]
    assert topo.num_pdf_classes(5) == 3 and topo.num_pdf_classes(1) == 5
    # Silence: state 0 may jump to any middle state, so 0 -> 1 -> 4 is its shortest path.
    assert topo.min_length(5) == 3 and topo.min_length(1) == 3
    for state in topo.topology_for_phone(1)[:-1]:
        assert sum(p for _, p in state.transitions) == pytest.approx(1.0)


def test_write_and_load_lang_round_trip(lang, tmp_path):
    write_lang(lang, tmp_path / "lang")
    for name in ("phones.txt", "words.txt", "topo", "L.fst", "L_disambig.fst", "disambig.int"):
        assert (tmp_path / "lang" / name).is_file()
    again = load_lang(tmp_path / "lang")
    assert again.phones == lang.phones and again.words == lang.words
    assert again.topology_text() == lang.topology_text()
    with pytest.raises(FileNotFoundError, match="prepare-lang"):
        load_lang(tmp_path / "missing")



def test_write_lang_again_rewrites_only_what_changed(lang, tmp_path):
    """Redoing prepare-lang with the same lexicon keeps every file (content and mtime), so no
    later stage sees a changed input; a changed lexicon rewrites what depends on it."""
    out = tmp_path / "lang"
    write_lang(lang, out)
    files = sorted(p.name for p in out.iterdir())
    assert "L.fst" in files and not [n for n in files if "tmp" in n]
    stamps = {n: (out / n).stat().st_mtime_ns for n in files}
    data = {n: (out / n).read_bytes() for n in files}
    write_lang(prepare_lang(lang.lexicon, lang.config), out)
    assert sorted(p.name for p in out.iterdir()) == files
    assert {n: (out / n).stat().st_mtime_ns for n in files} == stamps
    bigger = prepare_lang(lang.lexicon + [("dog", ["D", "AO", "G"])], lang.config)
    write_lang(bigger, out)
    changed = {n for n in files if (out / n).read_bytes() != data[n]}
    assert {"words.txt", "lexicon.txt", "L.fst", "L_disambig.fst"} <= changed
    assert {n for n in files if (out / n).stat().st_mtime_ns != stamps[n]} == changed


def monophone_graph_compiler(lang):
    """Topology, monophone tree, transition model and training-graph compiler of ``lang``."""
    topo = khg.HmmTopology()
    topo.read(lang.topology_text())
    ctx = khg.monophone_context_dependency(lang.real_phone_ids, topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx, topo)
    compiler = khg.TrainingGraphCompiler(
        tm, ctx, lang.lexicon_fst(), lang.disambig_phone_ids, khg.TrainingGraphCompilerOptions()
    )
    return topo, ctx, tm, compiler


def test_lexicon_fst_compiles_training_graphs_with_the_lexicon_phones(lang):
    """A flat-start path through a compiled training graph spells the words' pronunciations,
    optionally separated by silence."""
    topo, ctx, tm, compiler = monophone_graph_compiler(lang)
    graph = compiler.compile_graph_from_text(lang.words_to_ids("the cat sat".split()))
    tables = TransitionTables.build(tm, topo, ctx)
    allowed = [["DH", "AH"], ["DH", "IY"]]
    for seed in range(5):
        ok, lin = kaldifst.equal_align(graph, 60, seed)
        assert ok
        _, tids, _, _ = kaldifst.get_linear_symbol_sequence(lin)
        assert len(tids) == 60
        phones = [lang.phones[p] for p, _, _ in phone_segments(tables, np.array(tids))]
        speech = [p for p in phones if p != "sil"]
        assert speech[:2] in allowed and speech[2:] == ["K", "AE", "T", "S", "AE", "T"]


def test_read_lexicon_errors_and_msu_format(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("hello HH AH L OW\nworld\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_lexicon(bad)
    msu = tmp_path / "sw-ms98-dict.text"
    msu.write_text("#\n# comment\n[laughter] lau\nabout ax b aw t\nAbout ax b aw t\n")
    entries = read_msu_lexicon(msu)
    assert entries[0] == ("[laughter]", ["lau"])
    assert ("about", ["AX", "B", "AW", "T"]) in entries
    lang = prepare_lang(entries)
    assert "AX" in lang.phones


def test_position_dependent_phones(tmp_path):
    p = tmp_path / "lexicon.txt"
    p.write_text(LEXICON)
    lang = prepare_lang(read_lexicon(p), LangConfig(position_dependent_phones=True))
    assert {"AE_B", "AE_I", "AE_E", "AE_S", "sil", "sil_B"} <= set(lang.phones)
    assert dict((w, pr) for w, pr in lang.lexicon)["cat"] == ["K_B", "AE_I", "T_E"]
    assert dict((w, pr) for w, pr in lang.lexicon)["a"] == ["AH_S"]
    topo, ctx, tm, compiler = monophone_graph_compiler(lang)
    graph = compiler.compile_graph_from_text(lang.words_to_ids(["a", "cat"]))
    ok, lin = kaldifst.equal_align(graph, 30, 0)
    assert ok
    tables = TransitionTables.build(tm, topo, ctx)
    _, tids, _, _ = kaldifst.get_linear_symbol_sequence(lin)
    phones = [lang.phones[p] for p, _, _ in phone_segments(tables, np.array(tids))]
    assert [p for p in phones if p != "sil"] == ["AH_S", "K_B", "AE_I", "T_E"]


def test_optional_silence_carries_its_own_disambiguation_symbol(lang, tmp_path):
    # The lexicon needs #1, #2; the optional silence gets #3 in L_disambig only (Kaldi's --sil-disambig).
    assert lang.silence_disambig_symbol == "#3" and lang.phones[-1] == "#3"
    p2i = lang.phone_to_id
    assert p2i["#3"] in lang.disambig_phone_ids
    fst = lang.lexicon_fst(with_disambig=True)
    after_sil = {arc.nextstate for s in range(fst.num_states) for arc in kaldifst.ArcIterator(fst, s)
                 if arc.ilabel == p2i["sil"] and arc.olabel == 0}
    assert after_sil
    for s in after_sil:
        assert [(a.ilabel, a.olabel) for a in kaldifst.ArcIterator(fst, s)] == [(p2i["#3"], 0)]
    plain = lang.lexicon_fst(with_disambig=False)
    assert p2i["#3"] not in {a.ilabel for s in range(plain.num_states) for a in kaldifst.ArcIterator(plain, s)}
    write_lang(lang, tmp_path / "lang")
    assert (tmp_path / "lang" / "disambig.int").read_text().split()[-1] == str(p2i["#3"])
    again = load_lang(tmp_path / "lang")
    assert again.num_disambig == 2 and again.silence_disambig_symbol == "#3"
    # No optional silence, no symbol for it.
    no_sil = prepare_lang(lang.lexicon, LangConfig(sil_prob=0.0))
    assert no_sil.silence_disambig_symbol is None and no_sil.phones[-1] == "#2"


DETERMINIZE_L_G = """
import sys
from pathlib import Path
from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.lang import prepare_lang, read_lexicon
_, kaldifst = import_kaldi()
lang = prepare_lang(read_lexicon(Path(sys.argv[1])))
w2i = lang.word_to_id
words = [w for w in lang.words if w not in ("<eps>", "#0", "<s>", "</s>")]
assert "!sil" in words
g = kaldifst.compile("".join(f"0 0 {w2i[w]} {w2i[w]} 0\\n" for w in words) + "0 0\\n", acceptor=False)
kaldifst.arcsort(g, sort_type="ilabel")
lg = kaldifst.compose(lang.lexicon_fst(with_disambig=True), g)
det = kaldifst.determinize(lg)
print("determinized", lg.num_states, det.num_states)
"""


def test_l_disambig_composed_with_a_word_loop_including_silence_determinizes(tmp_path):
    """A word followed by optional silence and the same word followed by the word "!sil" (pronounced
    sil) must differ on L_disambig's input side, or determinization aborts (FATAL: non-functional).
    Run in a subprocess: OpenFst's FATAL kills the process."""
    import subprocess
    import sys

    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(LEXICON)
    done = subprocess.run([sys.executable, "-c", DETERMINIZE_L_G, str(lexicon)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FATAL" not in done.stderr
    _, n_lg, n_det = done.stdout.split()
    assert int(n_lg) > 0 and int(n_det) > 0
