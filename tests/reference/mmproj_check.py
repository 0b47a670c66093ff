#!/usr/bin/python3
"""reference.mmproj: the image embeddings our mmproj GGUF computes equal the merged Hugging Face model's.

    /usr/bin/python3 tests/reference/mmproj_check.py SHARDFORGE [MPIEXEC ARGS...]

`shardforge demo --arch gemma3-vl` (LoRA on the language model and the vision tower), then:
  * the merged checkpoint (safetensors, f32) -> vision_forward.py's embeddings of a fixed image (the reference; its
    mm_input_projection_weight rounded to F16, which the converter forces at every outtype);
  * our gguf:f32 export's mmproj-*.gguf, its tensors read back -> the same forward: max |diff| <= 1e-9 of the
    reference's largest value (both start from the same f32 weights; the clip.* hparams read back must equal the
    HF config's); gguf:f16 / gguf:q8_0 within their
    rounding (2e-2 / 5e-2);
  * the base alone (no adapter): its projector's embeddings differ from the merged ones by more than 5e-2 of the
    largest value, i.e. the vision-tower LoRA measurably moves them, 1000x more than the F32 tolerance;
  * self-test: the F32 projector without its soft_emb_norm + 1 misses the reference (the comparison can fail).
With MPIEXEC ARGS the exports run under it (rank invariance of the values is mpi.family_ranks' job).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_forward as vf  # noqa: E402

failures = 0


def check(cond, msg):
    global failures
    print(("ok: " if cond else "FAIL: ") + msg)
    failures += 0 if cond else 1


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {r.returncode}")


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sf, mpi = sys.argv[1], sys.argv[2:]
    w = tempfile.mkdtemp(prefix="sf-mmproj-")
    d = os.path.join(w, "demo")
    run([sf, "demo", d, "--arch", "gemma3-vl"])
    base, adapter = os.path.join(d, "base"), os.path.join(d, "adapter")
    run(mpi + [sf, "export", "--base", base, "--adapter", adapter, "--out", os.path.join(w, "merged"),
               "--format", "safetensors", "--dtype", "f32"])
    run(mpi + [sf, "export", "--base", base, "--adapter", adapter, "--out", os.path.join(w, "ours"), "--name", "vl",
               "--format", "gguf:f32,gguf:f16,gguf:q8_0"])
    run(mpi + [sf, "export", "--base", base, "--out", os.path.join(w, "plain"), "--name", "vl", "--format", "gguf:f32"])

    wh, hh = vf.hf_weights(os.path.join(w, "merged"))
    image = vf.test_image(hh["image_size"])
    wh["mm_proj"] = wh["mm_proj"].astype(np.float16).astype(np.float64)
    ref = vf.forward(wh, hh, image)
    print(f"reference embeddings {ref.shape}, max |value| {np.abs(ref).max():.4g}")
    for ty, tol in (("F32", 1e-9), ("F16", 2e-2), ("Q8_0", 5e-2)):
        wg, hg = vf.gguf_weights(os.path.join(w, "ours", f"mmproj-vl-{ty}.gguf"))
        f32 = dict(hh, eps=float(np.float32(hh["eps"])))  # clip.vision.attention.layer_norm_epsilon is a float32
        check(hg == f32, f"{ty}: the clip.* hparams read back equal config.json / processor_config.json's ({hg})")
        emb = vf.forward(wg, hg, vf.test_image(hg["image_size"]))
        r = rel(emb, ref)
        check(emb.shape == ref.shape and r <= tol, f"mmproj {ty}: embeddings vs the merged HF model: {r:.3g} <= {tol}")
        if ty == "F32":
            wg["mm_norm"] = wg["mm_norm"] - 1.0
            r = rel(vf.forward(wg, hg, image), ref)
            check(r > 1e-9, f"self-test: without the converter's 1 + w on soft_emb_norm the embeddings move by {r:.3g}")
    wp, hp = vf.gguf_weights(os.path.join(w, "plain", "mmproj-vl-F32.gguf"))
    r = rel(vf.forward(wp, hp, image), ref)
    check(r > 5e-2, f"the vision-tower LoRA moves the embeddings: base vs merged {r:.3g} > 5e-2")
    if failures:
        print(f"{failures} checks failed (work dir {w} kept)")
        sys.exit(1)
    subprocess.run(["rm", "-rf", w])
    print("all checks passed")


if __name__ == "__main__":
    main()
