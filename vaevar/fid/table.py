"""The paper's table for one run: FIDs plain and renormalized, the gain, the paper's numbers."""

from vaevar import data, layout

KINDS = tuple(zip(layout.KINDS, ("REC", "GEN-1", "GEN-2")))


def fid_table(results: dict[str, dict], dataset: str) -> str:
    """The paper's table for one run, in Markdown: FIDs plain and renormalized, and the gain."""

    def cell(label, key="fid"):
        return f"{results[label][key]:.2f}" if key in results.get(label, {}) else "-"

    def gain(kind, key="fid", scale=1.0):
        both = [results.get(kind, {}).get(key), results.get(f"{kind}_renorm", {}).get(key)]
        return f"{scale * (both[0] - both[1]):+.2f}" if None not in both else "-"

    def kid(label):
        entry = results.get(label, {})
        return f"{1000 * entry['kid']:.2f} ± {1000 * entry['kid_std']:.2f}" if "kid" in entry else "-"

    rows = [
        ("FID", [cell(k) for k, _ in KINDS]),
        ("FID renormalized", [cell(f"{k}_renorm") for k, _ in KINDS]),
        ("gain (without - with)", [gain(k) for k, _ in KINDS]),
    ]
    if any("kid" in r for r in results.values()):  # x 1000, ± its std over subsets
        rows += [
            ("KID x 1000", [kid(k) for k, _ in KINDS]),
            ("KID x 1000 renormalized", [kid(f"{k}_renorm") for k, _ in KINDS]),
            ("KID gain x 1000", [gain(k, "kid", 1000) for k, _ in KINDS]),
        ]
    paper = data.DATASETS[dataset].paper_fids if dataset in data.DATASETS else None
    if paper:
        rows += [
            ("paper, renormalized", [f"{paper[k][1]}" for k, _ in KINDS]),
            ("paper, gain", [f"{paper[k][0] - paper[k][1]:+.1f}" for k, _ in KINDS]),
        ]
    if any("fid_train_reference" in r for r in results.values()):
        key = "fid_train_reference"
        rows += [
            ("FID against training images", [cell(k, key) for k, _ in KINDS]),
            ("FID renormalized, training images", [cell(f"{k}_renorm", key) for k, _ in KINDS]),
            ("gain, training images", [gain(k, key) for k, _ in KINDS]),
        ]
    whole_sets = sorted(
        {r["n_whole_set"] for r in results.values() if r.get("n_whole_set", r["n"]) != r["n"]}
    )
    if whole_sets:
        rows += [
            (
                f"FID, whole sets (n = {', '.join(map(str, whole_sets))})",
                [cell(k, "fid_whole_set") for k, _ in KINDS],
            ),
            ("FID renormalized, whole sets", [cell(f"{k}_renorm", "fid_whole_set") for k, _ in KINDS]),
            ("gain, whole sets", [gain(k, "fid_whole_set") for k, _ in KINDS]),
        ]
    lines = ["| | " + " | ".join(name for _, name in KINDS) + " |", "|---|---|---|---|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    lines += ["", diversity_table(results)]
    sizes = sorted(
        {(r["n"], r["reference_n"], r["weights_hash"][:12], r["input_convention"]) for r in results.values()}
    )
    lines.append("")
    lines += [
        f"n = {n} per side against {ref} reference images; weights sha256 {h}...; input convention {c}"
        for n, ref, h, c in sizes
    ]
    return "\n".join(lines) + "\n"


DIVERSITY = ("precision", "recall", "density", "coverage")


def diversity_table(results: dict[str, dict]) -> str:
    """Fidelity and diversity apart (fid/diversity.py): each kind plain -> renormalized, on the FID's features."""

    def pair(kind, key):
        plain, renormed = results.get(kind, {}).get(key), results.get(f"{kind}_renorm", {}).get(key)
        if plain is None or renormed is None:
            return "-"
        return f"{plain:.3f} -> {renormed:.3f} ({renormed - plain:+.3f})"

    lines = ["| plain -> renormalized | " + " | ".join(name for _, name in KINDS) + " |", "|---|---|---|---|"]
    lines += [f"| {key} | " + " | ".join(pair(kind, key) for kind, _ in KINDS) + " |" for key in DIVERSITY]
    return "\n".join(lines) + "\n"


def sampler_table(results: dict[str, dict], summary: dict) -> str:
    """Every sampler scored, one row each: FID, pixel variance / the data's, latent variance, seconds
    (generate.py's summary.json gives the last three)."""
    rows = []
    for kind in ("gen1", "gen2"):
        info = summary.get("kinds", {}).get(kind, {})
        for name, suffix in ((kind, ""), (f"{kind}_renorm", "_renorm")):
            rows.append(
                (name, info.get(f"pixel_variance_ratio{suffix}"), info.get(f"latent_variance{suffix}"), None)
            )
    for name, info in summary.get("samplers", {}).items():
        rows.append(
            (name, info.get("pixel_variance_ratio"), info.get("latent_variance"), info.get("seconds"))
        )
    lines = [
        "| sampler | FID | pixel variance / data's | latent variance | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, pixels, latents, seconds in rows:
        fid = results.get(name, {}).get("fid")
        cells = [
            f"{fid:.2f}" if fid is not None else "-",
            f"{pixels:.3f}" if pixels is not None else "-",
            f"{latents:.1f}" if latents is not None else "-",
            f"{seconds:.1f}" if seconds is not None else "-",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
