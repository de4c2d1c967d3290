"""An Ollama Modelfile beside an exported GGUF: ``ollama create NAME -f NAME.Modelfile`` makes the agent a model.

Ollama renders a conversation with its own Go template, not the GGUF's Jinja one, so the TEMPLATE here
writes each family's turns as models/templates/<family>.jinja does: a ``tool`` message (Ollama's name
for a tool result) becomes the observation turn with its ``Observation: `` prefix, as agent.wire renders
it in training, and an assistant message that carries ``tool_calls`` instead of text gets them back as
``Action: {...}`` lines. SYSTEM is the run's system prompt with its tools (agent.prompt); Ollama puts it
first when a request brings no system message. Decoding is greedy (temperature 0, no repeat penalty, as
the agent is evaluated) and stops at the end-of-turn token and where the model starts to write an
observation itself (agent.wire.STOP_SEQUENCES).
"""

from __future__ import annotations

from pathlib import Path

from agentdistill.errors import UserError
from agentdistill.run_layout import MODELFILE_SUFFIX

# Go text/template per family; ``{{ .Content }}`` of a tool message is the tool's raw result.
_ACTIONS = ('{{ range .ToolCalls }}\nAction: {"name": "{{ .Function.Name }}", '
            '"arguments": {{ .Function.Arguments }}}{{ end }}')
TEMPLATES = {
    "chatml": (
        "{{- range .Messages }}<|im_start|>"
        '{{ if eq .Role "tool" }}observation\nObservation: {{ .Content }}'
        "{{ else }}{{ .Role }}\n{{ .Content }}" + _ACTIONS + "{{ end }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"
    ),
    "llama3": (
        "<|begin_of_text|>{{- range .Messages }}<|start_header_id|>"
        '{{ if eq .Role "tool" }}ipython<|end_header_id|>\n\nObservation: {{ .Content }}'
        "{{ else }}{{ .Role }}<|end_header_id|>\n\n{{ .Content }}" + _ACTIONS + "{{ end }}<|eot_id|>"
        "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    # Gemma has no system role: the system text opens the first user turn, as in gemma3.jinja.
    "gemma3": (
        '<bos>{{- $prefix := "" }}{{- range .Messages }}'
        '{{- if eq .Role "system" }}{{ $prefix = printf "%s\\n\\n" .Content }}'
        '{{- else }}<start_of_turn>'
        '{{- if eq .Role "tool" }}observation\nObservation: {{ .Content }}'
        '{{- else if eq .Role "assistant" }}model\n{{ .Content }}' + _ACTIONS +
        '{{- else }}{{ .Role }}\n{{ $prefix }}{{ $prefix = "" }}{{ .Content }}{{ end }}<end_of_turn>\n'
        "{{ end }}{{ end }}<start_of_turn>model\n"
    ),
}
# Ollama's defaults (temperature 0.8, repeat_penalty 1.1, 2048 tokens of context) are not how the agent runs.
PARAMETERS = {"temperature": 0, "top_k": 1, "repeat_penalty": 1.0, "num_ctx": 8192, "num_predict": 256}


def _quoted(text: str) -> str:
    if '"""' in text:
        raise UserError('a Modelfile block cannot hold """.', hint="Remove triple quotes from the system prompt.")
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, family: str, system: str, adapter_name: str | None = None) -> str:
    """The Modelfile for the GGUF file ``gguf_name`` (in the same folder) of a ``family`` model, with the
    LoRA GGUF ``adapter_name`` (in the same folder) applied to it when given."""
    from agentdistill.agent.wire import STOP_SEQUENCES
    from agentdistill.models.templates import END_OF_TURN

    if family not in TEMPLATES:
        raise UserError(f"no Ollama template for chat family {family!r}.", hint=f"Supported: {', '.join(TEMPLATES)}.")
    lines = [f"FROM ./{gguf_name}", *([f"ADAPTER ./{adapter_name}"] if adapter_name else []), ""]
    lines += [f"TEMPLATE {_quoted(TEMPLATES[family])}", "", f"SYSTEM {_quoted(system)}", ""]
    stops = dict.fromkeys([END_OF_TURN[family], *(s.strip() for s in STOP_SEQUENCES)])
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += [f"PARAMETER {k} {v}" for k, v in PARAMETERS.items()]
    return "\n".join(lines) + "\n"


def write_modelfile(run_dir: Path, gguf: Path, family: str, adapter: Path | None = None) -> Path:
    """Write ``<name>.Modelfile`` beside ``gguf`` (and the LoRA GGUF ``adapter``, in the same folder), named
    after the adapter's GGUF when given, else the model's; its SYSTEM the run's system prompt with the run's
    tools."""
    from agentdistill.agent.prompt import system_prompt
    from agentdistill.config import load_run_config
    from agentdistill.tools import load_tools

    tools = load_tools(load_run_config(run_dir), Path(run_dir))
    path = Path(gguf).parent / f"{Path(adapter or gguf).stem}{MODELFILE_SUFFIX}"
    text = modelfile_text(Path(gguf).name, family, system_prompt(tools), Path(adapter).name if adapter else None)
    path.write_text(text, encoding="utf-8")
    return path
