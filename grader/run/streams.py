"""Stream outputs as a notebook front end shows them."""


def merged_streams(outputs):
    """`outputs` with each run of stream outputs of one name merged into one, and what a
    carriage return overwrote left out, as a notebook front end shows them. A kernel splits
    printing into messages as its flushes fall: merged, one submission gives the same graded
    notebook and feedback on every run. (Not nbclient's `coalesce_streams`: its regular
    expression takes time quadratic in a line's length, minutes for one long print.) A
    stream whose text is not a string (a kernel can send anything) is left as it is."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (previous is not None and _stream_text(output) is not None
                and _stream_text(previous) is not None
                and previous.get("name") == output.get("name")):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(output)
    for output in merged:
        if "\r" in (_stream_text(output) or ""):
            output["text"] = "\n".join(_overwritten(line)
                                       for line in output["text"].split("\n"))
    return merged


def _stream_text(output):
    """A stream output's text, None for any other output or text that is not a string."""
    if isinstance(output, dict) and output.get("output_type") == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else None
    return None


def _overwritten(line):
    """What a terminal shows of `line` after its carriage returns: the text after the
    last one that something follows (in linear time)."""
    body = line.rstrip("\r")
    return body.rpartition("\r")[2] + line[len(body):]
