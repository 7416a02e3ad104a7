"""How far ki2api's output-token estimate is from a real Claude tokenizer, on text available offline.

The reference is the Claude tokenizer Anthropic shipped inside its Python SDK up to 0.38.0
(`anthropic/tokenizer.json`, read with the `tokenizers` library). Anthropic says it is exact for
older models and approximate for Claude 3 and later, whose tokenizer is not public; it is the
closest reference that runs here without network. The corpus is text that does not change with
ki2api: English prose (the fixtures' READMEs), Python (a few standard-library modules), Chinese
(the captured Kiro answers and user messages) and tool-call JSON (captured tool arguments and schemas).

    .venv/bin/python -m bench.experiments.usage_error  # fetches the 0.38.0 wheel once with pip
    .venv/bin/python -m bench.experiments.usage_error --tokenizer path/to/tokenizer.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Iterator

from ki2api.translate.usage import OutputCounter, estimate_tokens
from ki2api.upstream.events import TextDelta, iter_events
from tests.helpers.fixtures import CAPTURE

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Python code that does not change while ki2api does: a few of the standard library's modules.
STDLIB_CODE = ("json/decoder.py", "json/encoder.py", "http/cookies.py", "textwrap.py", "shlex.py", "fnmatch.py")
CACHE = Path.home() / ".cache" / "ki2api-bench"
WHEEL = "anthropic==0.38.0"


def tokenizer_json(explicit: str | None) -> Path:
    """The reference tokenizer file: the given one, or extracted from the SDK wheel fetched by pip."""
    if explicit:
        return Path(explicit)
    target = CACHE / "tokenizer.json"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(CACHE)],
                       check=True)
        wheel = next(CACHE.glob("anthropic-0.38.0-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            target.write_bytes(zf.read("anthropic/tokenizer.json"))
    return target


def _chunks(text: str, size: int = 1500) -> Iterator[str]:
    block = ""
    for para in text.split("\n\n"):
        block = f"{block}\n\n{para}" if block else para
        if len(block) >= size:
            yield block
            block = ""
    if block.strip():
        yield block


def _user_texts(request: dict) -> Iterator[str]:
    state = request["conversationState"]
    for message in state["history"] + [state["currentMessage"]]:
        body = message.get("userInputMessage") or message.get("assistantResponseMessage")
        if body and body.get("content"):
            yield body["content"]


def _captured_answers() -> list[list[str]]:
    """The streamed text pieces of the captured text answers, as Kiro sent them."""
    answers = []
    for name in ("06", "16"):
        events = iter_events([(CAPTURE / f"{name}.response.eventstream").read_bytes()])
        answers.append([e.text for e in events if isinstance(e, TextDelta)])
    flow = json.loads((CAPTURE / "image-tool-flow" / "06-turn-claude-haiku-toolUse.json").read_text())
    pieces = [json.loads(line.partition("] ")[2])["content"] for line in flow["resBodyEventstream"].splitlines()
              if line.startswith("[assistantResponseEvent]")]
    answers.append(pieces)
    return answers


def _cjk(text: str) -> bool:
    return sum(ord(ch) > 0x2E80 for ch in text) > 10


def corpus() -> dict[str, list[str]]:
    """Samples by kind of text."""
    docs = (CAPTURE / "README.md", CAPTURE.parent / "README.md")
    prose = [c for f in docs if f.exists() for c in _chunks(f.read_text())]
    code = [c for f in STDLIB_CODE for c in _chunks((STDLIB / f).read_text()) if len(c) > 200]
    cjk = ["".join(a) for a in _captured_answers()]
    request = json.loads((CAPTURE / "14.request.json").read_text())
    cjk += [t for t in _user_texts(request) if _cjk(t) and len(t) < 4000]
    for path in sorted((CAPTURE / "image-tool-flow").glob("*.json")):
        texts = _user_texts(json.loads(path.read_text())["reqBodyJSON"])
        cjk += [p for t in texts for p in t.split("\n\n") if _cjk(p)]
    cjk = list(dict.fromkeys(cjk))
    tools = request["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]
    as_json = [json.dumps(t["toolSpecification"]["inputSchema"]["json"], ensure_ascii=False) for t in tools]
    for name in ("14",):
        events = list(iter_events([(CAPTURE / f"{name}.response.eventstream").read_bytes()]))
        as_json.append("".join(getattr(e, "input", "") for e in events))
    return {"English prose": prose, "Python code": code, "Chinese": cjk, "tool-call JSON": as_json}


def streamed(pieces: list[str]) -> int:
    """The estimate as ki2api makes it during a stream: piece by piece."""
    counter = OutputCounter()
    for piece in pieces:
        counter.add(piece)
    return counter.tokens


def main(argv: list[str] | None = None) -> None:
    """Print the estimate's error per kind of text and for the captured streams."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="a tokenizer.json (default: from the anthropic 0.38.0 wheel)")
    args = parser.parse_args(argv)
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(tokenizer_json(args.tokenizer)))

    def count(text: str) -> int:
        return len(reference.encode(text).ids)

    print(f"{'kind':<16} {'samples':>7} {'reference':>9} {'estimate':>9} {'total err':>9} {'mean |err|':>10}")
    all_ref = all_est = 0
    for kind, samples in corpus().items():
        ref = [count(s) for s in samples]
        est = [estimate_tokens(s) for s in samples]
        mean_abs = sum(abs(e - r) / r for e, r in zip(est, ref)) / len(ref)
        all_ref, all_est = all_ref + sum(ref), all_est + sum(est)
        print(f"{kind:<16} {len(samples):>7} {sum(ref):>9} {sum(est):>9} "
              f"{(sum(est) - sum(ref)) / sum(ref):>+9.1%} {mean_abs:>10.1%}")
    print(f"{'all':<16} {'':>7} {all_ref:>9} {all_est:>9} {(all_est - all_ref) / all_ref:>+9.1%}")
    for pieces in _captured_answers():
        text = "".join(pieces)
        ref = count(text)
        print(f"captured stream of {len(pieces)} pieces: reference {ref}, streamed estimate {streamed(pieces)} "
              f"({(streamed(pieces) - ref) / ref:+.1%})")


if __name__ == "__main__":
    main()
