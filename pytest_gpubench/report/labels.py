"""Chart labels from benchmark keys (test ids): the prefix every key shares is dropped (the
chart's subtitle names it), a label still too long is wrapped at a ``/`` or ``::`` or else
shortened in the middle and listed in full under the chart.

Apart from ``charts`` because it is plain text work, testable without matplotlib; ``charts``
re-exports ``short_labels`` and ``common_prefix``.
"""

from __future__ import annotations

from collections.abc import Sequence

LABEL_LIMIT = 56  # characters per tick-label line


def _tokens(key: str) -> list[str]:
    """'a/b::c[x/y]' -> ['a/', 'b::', 'c[x/y]']: parts that keep their trailing separator; a
    pytest parameter id in brackets is never split."""
    tokens, current, depth, i = [], "", 0, 0
    while i < len(key):
        ch = key[i]
        depth += (ch == "[") - (ch == "]")
        sep = "::" if key.startswith("::", i) else "/" if ch == "/" else ""
        if sep and depth <= 0:
            tokens.append(current + sep)
            current, i = "", i + len(sep)
            continue
        current += ch
        i += 1
    if current:
        tokens.append(current)
    return tokens


def common_prefix(keys: Sequence[str]) -> str:
    """The longest run of whole path parts (ending with '/' or '::') every key starts with,
    leaving every key something of its own."""
    if not keys:
        return ""
    split = [_tokens(k) for k in keys]
    prefix: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1 or not parts[0].endswith(("/", "::")):
            break
        prefix.append(parts[0])
    while prefix and any(len(s) <= len(prefix) for s in split):
        prefix.pop()
    return "".join(prefix)


def _wrap(label: str, limit: int, max_lines: int = 3) -> str | None:
    """Lines of at most ``limit`` characters, broken after a separator: two balanced lines if
    they fit, else greedily up to ``max_lines``; None if the label cannot be wrapped so."""
    tokens = _tokens(label)
    best = None
    for i in range(1, len(tokens)):
        first, second = "".join(tokens[:i]), "".join(tokens[i:])
        if len(first) <= limit and len(second) <= limit:
            balance = abs(len(first) - len(second))
            if best is None or balance < best[0]:
                best = (balance, f"{first}\n{second}")
    if best:
        return best[1]
    lines = [""]
    for token in tokens:
        if len(token) > limit:
            return None
        if len(lines[-1]) + len(token) > limit:
            lines.append("")
        lines[-1] += token
    return "\n".join(lines) if len(lines) <= max_lines else None


def short_labels(keys: Sequence[str], limit: int = LABEL_LIMIT) -> tuple[str, list[str], dict]:
    """(shared prefix, one label per key, {shortened label: full id} for labels that had to be
    cut). Labels stay unique."""
    prefix = common_prefix(keys)
    labels: list[str] = []
    cut: dict[str, str] = {}
    for key in keys:
        label = key[len(prefix) :]
        if len(label) > limit:
            wrapped = _wrap(label, limit)
            if wrapped is not None:
                label = wrapped
            else:
                head = (limit - 1) // 2
                label = label[:head] + "…" + label[-(limit - 1 - head) :]
                n = 2
                base = label
                while label in labels:
                    label = f"{base} #{n}"
                    n += 1
                cut[label] = key
        labels.append(label)
    return prefix, labels, cut
