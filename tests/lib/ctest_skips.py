#!/usr/bin/python3
"""ctest_skips.py BUILD_DIR JUNIT_XML: print every test that ctest skipped in the run that wrote JUNIT_XML
(ctest --output-junit), with its reason, and exit 1 if one of them is not labelled gpu.

Only a gpu-labelled test may skip (no GPU on the machine is an environment fact); every other dependency of the
suite is installed by jobs/install-deps.sh, so any other skip is a regression hidden as a pass (docs/testing.md,
"Skips"). The reason is the test's own "SKIP: ..." line or gtest's "[  SKIPPED ]" lines, as printed."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET


def labels_by_test(build):
    out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build, check=True, capture_output=True, text=True)
    labels = {}
    for t in json.loads(out.stdout)["tests"]:
        for p in t.get("properties", []):
            if p["name"] == "LABELS":
                labels[t["name"]] = p["value"]
    return labels


def reason(case):
    out = case.findtext("system-out") or ""
    text = out.splitlines()
    lines = [l.strip() for l in text if l.startswith("SKIP")]
    # GTEST_SKIP() << why: gtest prints "file:line: Skipped" and the message on the next line
    lines += [f"{l.strip()} {text[i + 1].strip()}" for i, l in enumerate(text[:-1]) if l.rstrip().endswith(": Skipped")]
    msg = case.find("skipped")
    if msg is not None and msg.get("message"):
        lines.append(msg.get("message"))
    return "; ".join(lines[:4]) or "(no reason printed)"


def main():
    build, junit = sys.argv[1], sys.argv[2]
    labels = labels_by_test(build)
    # A SKIP_RETURN_CODE skip is a <skipped> element; a SKIP_REGULAR_EXPRESSION one (gtest_discover_tests and
    # GTEST_SKIP) is recorded as run, so gtest's "[  SKIPPED ]" line in the output is what marks it. A test whose
    # executable is missing is "notrun" without <skipped>: ctest already counts it as failed.
    skipped = [c for c in ET.parse(junit).getroot().iter("testcase")
               if c.find("skipped") is not None
               or any(l.startswith("[  SKIPPED ]") for l in (c.findtext("system-out") or "").splitlines())]
    bad = 0
    for c in skipped:
        name = c.get("name")
        ok = "gpu" in labels.get(name, [])
        bad += not ok
        print(f"skipped{'' if ok else ' (NOT ALLOWED: not labelled gpu)'}: {name}: {reason(c)}")
    print(f"{len(skipped)} test(s) skipped, {bad} not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
