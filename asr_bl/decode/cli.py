"""What the decode tools (asr_bl-lm, asr_bl-mkgraph, asr_bl-decode) count as bad input.

They follow the console scripts' one convention (:func:`asr_bl.bin.run_tool`): these exception
types exit with code 2 and one line naming the file and the fix; any other failure exits 1.
"""
from asr_bl.decode.acoustic import ModelDirError
from asr_bl.decode.graph import GraphError
from asr_bl.decode.inputs import InputError

#: Exceptions that mean "bad input": their message names the file and the fix.
USAGE_ERRORS = (FileNotFoundError, NotADirectoryError, GraphError, ModelDirError, InputError, ValueError)
