"""Checks the HTML page of a run report (`shardforge report RUN.h5 --html PAGE`) against the HDF5 report, read
independently with h5py: one timeline lane per rank; one bar per work unit, inside the lane of the rank /units/rank
names, titled with the tensor of /units/tensor; the units of one (rank, thread) do not overlap in time; one stage
row per /stages/name; nothing loaded from outside the page (no src/href attribute, no <link>, no url(...)).
With --dom (Chromium's --dump-dom of the page): also the counts the page's script wrote into #rendered, which only
exist once a browser ran it. With --png (Chromium's --screenshot): a WIDTHxHEIGHT PNG in which the timeline's bars
were drawn (pixels of its colours).
Usage: html_check.py RUN.h5 PAGE.html [--dom DUMP.html] [--png SHOT.png WIDTHxHEIGHT]"""
import struct
import sys
import zlib
from html.parser import HTMLParser

import h5py

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
fails = []


def check(cond, msg):
    if not cond:
        fails.append(msg)


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.lanes, self.bars, self.stages, self.external, self.rendered = [], [], 0, [], None
        self.stack = []          # open elements: (tag, attrs)
        self.title_of = None     # bar whose <title> is open
        self.fills = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "srcset", "action"):
            if k in a:
                self.external.append(f"<{tag} {k}={a[k]}>")
        if tag == "link":
            self.external.append("<link>")
        if "url(" in (a.get("style") or ""):
            self.external.append(f"<{tag} style=url(...)>")
        if tag == "g" and a.get("class") == "lane":
            self.lanes.append(int(a["data-rank"]))
        if tag == "rect" and a.get("class") == "bar":
            lane = next((int(x["data-rank"]) for t, x in reversed(self.stack) if t == "g" and "data-rank" in x), None)
            self.bars.append({"unit": int(a["data-unit"]), "lane": lane, "title": ""})
            self.fills.add(a.get("fill"))
            self.title_of = self.bars[-1]
        if tag == "tr" and a.get("class") == "stage":
            self.stages += 1
        if a.get("id") == "rendered":
            self.rendered = a
        if tag not in ("meta", "br", "line", "input", "img"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "rect":
            self.title_of = None

    def handle_data(self, data):
        if self.title_of is not None and self.stack and self.stack[-1][0] == "title":
            self.title_of["title"] += data

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()


def parse(path):
    p = Page()
    text = open(path, encoding="utf-8").read()
    p.feed(text)
    return p, text


def png_pixels(path, max_rows):
    """(width, height, bytes per pixel, the first max_rows rows) of an 8-bit non-interlaced RGB(A) PNG (what
    Chromium writes); the rows are unfiltered in pure Python, so only the top of the page is decoded."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, w = 8, b"", 0
    while at < len(b):
        n, kind = struct.unpack(">I4s", b[at:at + 8])
        body = b[at + 8:at + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6), f"PNG type {ctype}/{depth}/{interlace}"
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(min(h, max_rows)):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + prev[i]) & 255
            elif f == 3:
                line[i] = (line[i] + (a + prev[i]) // 2) & 255
            elif f == 4:
                p = a + prev[i] - c
                pa, pb, pc = abs(p - a), abs(p - prev[i]), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else prev[i] if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def main():
    args = sys.argv[1:]
    h5, page = args[0], args[1]
    dom = args[args.index("--dom") + 1] if "--dom" in args else None
    png = args[args.index("--png") + 1:args.index("--png") + 3] if "--png" in args else None
    f = h5py.File(h5, "r")
    ranks, n_units = int(f.attrs["ranks"]), int(f.attrs["units"])
    u = f["units"]
    rank, thread = u["rank"][:], u["thread"][:]
    start, end, tensor = u["start_s"][:], u["end_s"][:], u["tensor"][:]
    names = [x.decode() for x in f["tensors/name"][:]]
    check(len(rank) == n_units, f"/units has {len(rank)} rows, attribute units says {n_units}")
    check(all(0 <= r < ranks for r in rank), "a unit without a valid rank")
    check(all(0 <= s <= e for s, e in zip(start, end)), "a unit with start > end or negative")
    by_thread = {}
    for i in range(n_units):
        by_thread.setdefault((int(rank[i]), int(thread[i])), []).append((start[i], end[i]))
    for k, spans in by_thread.items():
        spans.sort()
        check(all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"units of rank/thread {k} overlap in time")
    check(list(f["stages/name"][:]) == [b"read", b"dequant", b"merge", b"quantize", b"write"], "stage names")
    check(f["stages/seconds"].shape == (ranks, 5), f"/stages/seconds shape {f['stages/seconds'].shape}")
    check(int(f["stages/bytes"][0]) == int(f.attrs["bytes_read"]), "/stages/bytes read != attribute bytes_read")
    check(int(f["stages/bytes"][4]) == int(f.attrs["bytes_written"]), "/stages/bytes write != bytes_written")

    for label, path in [("page", page)] + ([("dom", dom)] if dom else []):
        p, text = parse(path)
        check(sorted(p.lanes) == list(range(ranks)), f"{label}: lanes {sorted(p.lanes)}, want one per rank of {ranks}")
        check(len(p.bars) == n_units, f"{label}: {len(p.bars)} bars, want one per unit ({n_units})")
        check(sorted(b["unit"] for b in p.bars) == list(range(n_units)), f"{label}: bars do not cover every unit once")
        for b in p.bars:
            i = b["unit"]
            if 0 <= i < n_units:
                check(b["lane"] == rank[i], f"{label}: unit {i} drawn in lane {b['lane']}, ran on rank {rank[i]}")
                first = b["title"].split("\n")[0]
                check(first == names[tensor[i]], f"{label}: unit {i} titled {first!r}, tensor {names[tensor[i]]!r}")
        check(p.stages == 5, f"{label}: {p.stages} stage rows, want 5")
        check(not p.external, f"{label}: external resources {p.external[:3]}")
        check("http://" not in text and "https://" not in text, f"{label}: mentions http(s)://")
        if label == "dom":
            r = p.rendered or {}
            check(r.get("data-lanes") == str(ranks) and r.get("data-bars") == str(n_units),
                  f"dom: the page's script counted lanes={r.get('data-lanes')} bars={r.get('data-bars')}, "
                  f"want {ranks} and {n_units} (did it run?)")
    if png:
        want_w, want_h = (int(x) for x in png[1].split("x"))
        w, h, bpp, rows = png_pixels(png[0], 600)  # the timeline is at the top of the page
        check((w, h) == (want_w, want_h), f"screenshot is {w}x{h}, want {want_w}x{want_h}")
        p, _ = parse(page)
        colours = {bytes.fromhex(c[1:]) for c in p.fills if c}
        seen = {}
        for row in rows:
            for x in range(0, len(row), bpp):
                px = row[x:x + 3]
                if px in colours:
                    seen[px] = seen.get(px, 0) + 1
        # The legend's swatches are 12x12 pixels each; the bars cover most of a 1000-pixel-wide lane per rank.
        check(sum(seen.values()) >= 5000 + 144 * len(colours),
              f"screenshot: pixels of the bar colours {dict((k.hex(), v) for k, v in seen.items())}, "
              f"want the bars drawn (>= {5000 + 144 * len(colours)} pixels)")
    for m in fails[:20]:
        print("html_check:", m)
    print(f"html_check: {ranks} ranks, {n_units} units, {len(fails)} problem(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
