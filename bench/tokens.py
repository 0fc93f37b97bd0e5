"""What counting prompt tokens costs: microseconds per message with the model's tokenizer and with the estimate.

Counts chat-sized messages (20 to 600 characters, English, German, Japanese, code, emoji) one at a time, each
new to the counter (``first``) and again (``again``: history turns and memory lines come back turn after turn,
and the tokenizer's counts are cached), then assembles a whole prompt (40 history turns, a full memory section)
as a reply does. Run: ``python bench/tokens.py``.
"""

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain.budget import estimate_tokens
from bot.domain.prompt import Budget, PersonaCard, PromptRequest, Turn, build_prompt
from bot.llm.tokens import counter_for

SAMPLES = [
    "I climb at the gym every Sunday with my sister, and next week we're trying the big outdoor crag near Lyon!",
    "Ich gehe jeden Sonntag mit meiner Schwester klettern, und nächste Woche versuchen wir den großen Felsen.",
    "毎週日曜日に妹とジムでクライミングをしています。来週はリヨン近くの大きな岩場に挑戦します。",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "lol 😂😂 that's so true!!! 🎉 see u tmrw <3",
]


def messages(n: int, rng: random.Random) -> list[str]:
    """``n`` different messages of 20 to 600 characters."""
    out = []
    for i in range(n):
        text = " ".join(rng.choice(SAMPLES) for _ in range(rng.randint(1, 5)))
        out.append(f"{i} {text[: rng.randint(20, 600)]}")
    return out


def per_message_us(count: object, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        count(text)  # type: ignore[operator]
    return (time.perf_counter() - started) / len(texts) * 1e6


def main() -> None:
    rng = random.Random(7)
    texts = messages(20000, rng)
    tokenizer = counter_for("gpt-4o-mini")
    tokenizer("warm up")
    print(f"mean message: {statistics.mean(len(t) for t in texts):.0f} characters")
    print(f"estimate:          {per_message_us(estimate_tokens, texts):6.2f} µs/message")
    print(f"tokenizer, first:  {per_message_us(tokenizer, texts):6.2f} µs/message")
    print(f"tokenizer, again:  {per_message_us(tokenizer, texts[-4000:]):6.2f} µs/message")

    history = [Turn("user" if i % 2 else "assistant", text) for i, text in enumerate(messages(40, rng))]
    memories = "\n".join(messages(30, rng))
    clear = getattr(tokenizer, "cache_clear", lambda: None)
    for name, count, cold in (
        ("estimate", estimate_tokens, False),
        ("tokenizer", tokenizer, False),
        ("tokenizer, nothing cached", tokenizer, True),
    ):
        runs = []
        for turn in range(200):
            if cold:
                clear()
            request = PromptRequest(
                persona=PersonaCard("Hearth", "A warm, curious companion."),
                speaker="Ana",
                place="#general in Cosy Corner",
                current=[Turn("user", f"message {turn}: {SAMPLES[turn % len(SAMPLES)]}", "Ana")],
                history=history,
                sections={"memories": memories, "facts": "- likes climbing\n- lives in Lyon"},
                is_group=True,
            )
            started = time.perf_counter()
            build_prompt(request, Budget(count=count))
            runs.append(time.perf_counter() - started)
        print(f"whole prompt, {name}: {statistics.median(runs) * 1e6:6.0f} µs (median of {len(runs)})")


if __name__ == "__main__":
    main()
