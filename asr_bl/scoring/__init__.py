"""Hub5-style scoring: STM/CTM writers, noise/hesitation filtering, GLM mappings, and two scorers
that give the same counts (NIST sclite from Debian ``sctk``, and an in-process aligner that
reproduces sclite's DP exactly). See :mod:`asr_bl.scoring.score` for the pipeline."""
from asr_bl.scoring.align import align_segment, parse_ref_text
from asr_bl.scoring.counts import ErrorCounts, WerReport, best_setting
from asr_bl.scoring.filters import HESITATIONS, HubFilter, filter_reference, filter_tokens
from asr_bl.scoring.glm import PROJECT_GLM_RULES, Glm, GlmFormatError, apply_glm, project_glm, read_glm, write_glm
from asr_bl.scoring.score import ScoringError, find_sclite, oov_count, score_ctm, score_texts
from asr_bl.scoring.trans import (
    TranscriptFormatError,
    read_ctm,
    read_stm,
    side_channel,
    stm_segments_from_cuts,
    write_ctm,
    write_stm,
)

__all__ = [
    "ErrorCounts",
    "WerReport",
    "best_setting",
    "HubFilter",
    "HESITATIONS",
    "filter_tokens",
    "filter_reference",
    "Glm",
    "GlmFormatError",
    "PROJECT_GLM_RULES",
    "read_glm",
    "apply_glm",
    "project_glm",
    "write_glm",
    "ScoringError",
    "find_sclite",
    "oov_count",
    "score_ctm",
    "score_texts",
    "TranscriptFormatError",
    "read_ctm",
    "read_stm",
    "side_channel",
    "stm_segments_from_cuts",
    "write_ctm",
    "write_stm",
    "align_segment",
    "parse_ref_text",
]
