"""Labelled image grids for people: previews, sample grids, real-vs-synthetic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgan import fileio  # noqa: E402


def images_by_id(dataset_dir: str, ids) -> dict[str, np.ndarray]:
    """{image id: uint8 image [R, R, C]} of `ids` of a prepared dataset, read on this process (for pictures)."""
    from medgan.data import pipeline  # tf.data: imported only where pictures of a dataset are drawn

    batch = next(pipeline.numpy_batches(pipeline.eval_dataset(dataset_dir, ids, batch_size=len(ids), cache=False)))
    keep = batch["mask"]
    return dict(zip((i.decode() for i in batch["image_id"][keep]), to_uint8(batch["image"][keep])))


def from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] images -> float32 in [-1, 1], the networks' range (the inverse of `to_uint8`)."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Maps model-space images in [-1, 1] to uint8 [0, 255] (uint8 passes through)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> one mosaic [rows * H, columns * W, C] (missing cells black), for TensorBoard."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * h, columns * w, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return canvas


def save_labelled_grid(
    path: str,
    images: np.ndarray,
    captions: Sequence[str],
    *,
    columns: int = 8,
    title: str = "",
) -> None:
    """Writes a PNG grid of `images` [N, H, W, C] with a caption under each.

    C is 1 (grey) or 3 (e.g. three CT windows, shown as RGB). Captions are the
    positive label names, wrapped, so a reader can check each image's findings.
    """
    images = to_uint8(images)
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    rows = max(1, -(-len(images) // columns))
    cell = 1.9
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * cell, rows * (cell + 0.5)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")
        ax.set_title(_wrap(caption), fontsize=6)
    save_figure(figure, path, title)


def save_figure(figure, path: str, title: str = "", title_size: int = 9) -> None:
    """Titles, lays out and writes `figure` as a PNG at `path` (atomically), then closes it."""
    if title:
        figure.suptitle(title, fontsize=title_size)
    figure.tight_layout()
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def sweep_x_axis(ax, xs: Sequence[float], label: str, log_base: float | None = None) -> None:
    """Sets a sweep's x axis on `ax`: ticks at the swept values `xs` only, printed plainly (32, not 2^5).

    `log_base` None keeps the axis linear (k = 2, 4, 6, 10); 10 suits n, 2 suits resolutions.
    """
    if log_base is not None:
        ax.set_xscale("log", base=log_base)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(label)


def _wrap(text: str, width: int = 26) -> str:
    """Breaks each line of `text` at spaces into lines of at most `width` characters (longer words stay whole)."""
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    return "\n".join(lines)


def caption(labels: np.ndarray, class_names: Sequence[str]) -> str:
    """Names of the positive entries of a multi-hot vector [K], '+'-joined."""
    names = [name for name, on in zip(class_names, np.asarray(labels) > 0.5) if on]
    return " + ".join(names) if names else "(none)"


def save_roc_curves(
    path: str, labels: np.ndarray, scores: Mapping[str, np.ndarray], class_names: Sequence[str]
) -> None:
    """One ROC panel per class, a curve per classifier (e.g. trained on real / on synthetic), AUC in the legend.

    labels: [N, K] of one test split; scores: {name: [N, K]} on those images.
    A class without positives or negatives in the split has no curve; its
    panel says so instead of drawing a misleading diagonal.
    """
    from medgan.eval import auc

    labels = np.asarray(labels)
    columns = min(4, len(class_names))
    rows = -(-len(class_names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(class_names):]:
        ax.axis("off")
    for k, (ax, name) in enumerate(zip(axes.flat, class_names)):
        positives = int(labels[:, k].sum())
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
        if 0 < positives < len(labels):
            for label, s in scores.items():
                fpr, tpr = auc.roc_curve(labels[:, k], s[:, k])
                ax.plot(fpr, tpr, label=f"{label} {auc.roc_auc(labels[:, k], s[:, k]):.3f}")
            ax.legend(loc="lower right", fontsize=7, title="trained on, AUC", title_fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no AUC:\n{positives} positives\nof {len(labels)}", ha="center", va="center")
        ax.set_title(_wrap(name, 34), fontsize=8)
        ax.set_xlabel("false positive rate", fontsize=7)
        ax.set_ylabel("true positive rate", fontsize=7)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    save_figure(figure, path)


def save_embedding(
    path: str, points: np.ndarray, is_synthetic: np.ndarray, groups: Sequence[str], *, title: str = "",
    most: int = 9,
) -> None:
    """Two panels of a 2-D map: real vs synthetic, and the label combinations (the `most` commonest, rest grey).

    points [N, 2]; is_synthetic [N] bool; groups [N] (e.g. captions of the
    label combinations). Real points are dots, synthetic ones crosses, in both.
    """
    points, is_synthetic, groups = np.asarray(points), np.asarray(is_synthetic, bool), np.asarray(groups)
    if not len(points) == len(is_synthetic) == len(groups):
        raise ValueError(f"{len(points)} points, {len(is_synthetic)} real/synthetic flags, {len(groups)} groups")
    names, counts = np.unique(groups, return_counts=True)
    shown = list(names[np.argsort(-counts, kind="stable")][:most])
    colours = plt.get_cmap("tab10")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.6))
    for synthetic, colour, name in ((False, "tab:blue", "real"), (True, "tab:orange", "synthetic")):
        chosen = is_synthetic == synthetic
        left.scatter(*points[chosen].T, s=9, c=colour, marker="x" if synthetic else "o", linewidths=0.7,
                     alpha=0.7, label=f"{name} ({int(chosen.sum())})")
    left.legend(fontsize=8, loc="best")
    left.set_title("real and synthetic", fontsize=9)
    for i, name in enumerate([*shown, None]):
        in_group = ~np.isin(groups, shown) if name is None else groups == name
        if not in_group.any():
            continue
        colour = "0.75" if name is None else colours(i % 10)
        for synthetic in (False, True):
            chosen = in_group & (is_synthetic == synthetic)
            right.scatter(*points[chosen].T, s=9, c=[colour], marker="x" if synthetic else "o", linewidths=0.7,
                          alpha=0.7, label=None if synthetic else _wrap("other" if name is None else str(name), 40))
    right.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5),
                 title="label combination (o real, x synthetic)", title_fontsize=7)
    right.set_title("label combinations", fontsize=9)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(figure, path, title, title_size=10)


def save_neighbour_strips(
    path: str,
    queries: np.ndarray,
    neighbours: np.ndarray,
    query_captions: Sequence[str],
    neighbour_captions: Sequence[Sequence[str]],
    *,
    title: str = "",
) -> None:
    """Rows of a synthetic image (framed) followed by its nearest real training images, as in the study's Figures 2-4.

    queries [Q, H, W, C], neighbours [Q, m, H, W, C] (model space or uint8);
    captions say which image and how near (e.g. "1 - cos 0.012, SSIM 0.93").
    """
    queries, neighbours = to_uint8(queries), to_uint8(neighbours)
    rows, m = neighbours.shape[:2]
    if len(queries) != rows or len(query_captions) != rows or len(neighbour_captions) != rows:
        raise ValueError(f"{len(queries)} queries, {rows} neighbour rows, {len(query_captions)} and "
                         f"{len(neighbour_captions)} caption rows")
    cell = 1.7
    figure, axes = plt.subplots(rows, m + 1, figsize=((m + 1) * cell, rows * (cell + 0.45)), squeeze=False)
    for r in range(rows):
        for c, (image, text) in enumerate(zip([queries[r], *neighbours[r]], [query_captions[r],
                                                                              *neighbour_captions[r]])):
            ax = axes[r, c]
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(c == 0)
                spine.set_color("tab:orange")
                spine.set_linewidth(2.5)
            ax.set_title(_wrap(text, 28), fontsize=6)
    save_figure(figure, path, title)


def save_distance_histogram(path: str, distances: Mapping[str, np.ndarray], threshold: float, threshold_label: str,
                            *, title: str = "Distance to the nearest real training image") -> None:
    """Overlaid histograms of nearest-neighbour distances (e.g. synthetic -> train and real test -> train),
    each normalised to its own count, and the flag threshold as a vertical line."""
    figure, ax = plt.subplots(figsize=(7, 3.6))
    values = [np.asarray(v, np.float64) for v in distances.values()]
    edges = np.histogram_bin_edges(np.concatenate(values), bins=40)
    for (name, v), colour in zip(distances.items(), ("tab:orange", "tab:blue", "tab:green")):
        ax.hist(v, bins=edges, density=True, alpha=0.5, color=colour, label=f"{name} ({len(v)})")
    ax.axvline(threshold, color="tab:red", linewidth=1.2, label=threshold_label)
    ax.set_xlabel("1 - cosine similarity to the nearest real training image", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    save_figure(figure, path)


def save_occlusion_maps(path: str, image: np.ndarray, maps: Mapping[str, np.ndarray], class_names: Sequence[str],
                        *, title: str = "") -> None:
    """One row per class: a real test image with the class, then each classifier's mean occlusion map.

    image [K, H, W, C] (an example positive image per class, model space or
    uint8); maps {classifier: [K, H, W]} the mean rise in the class's BCE per
    pixel over the test images with the class. Each row shares one colour
    scale, so the two classifiers compare at a glance; it reaches below 0
    where occluding a patch lowers the loss (a judge that ranks the class
    below chance), and spans at least 1 when the maps are flat.
    """
    image = to_uint8(image)
    columns = 1 + len(maps)
    figure, axes = plt.subplots(len(class_names), columns, figsize=(2.2 * columns, 2.3 * len(class_names)),
                                squeeze=False)
    for k, name in enumerate(class_names):
        low = min(0.0, *(float(np.min(m[k])) for m in maps.values()))
        high = max(float(np.max(m[k])) for m in maps.values())
        high = high if high > low else low + 1.0
        axes[k, 0].imshow(image[k, ..., 0] if image.shape[-1] == 1 else image[k], cmap="gray", vmin=0, vmax=255)
        axes[k, 0].set_title(_wrap(f"{name}: a test image", 28), fontsize=7)
        for ax, (label, m) in zip(axes[k, 1:], maps.items()):
            shown = ax.imshow(m[k], cmap="magma", vmin=low, vmax=high)
            ax.set_title(_wrap(f"trained on {label}", 28), fontsize=7)
        figure.colorbar(shown, ax=axes[k, -1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
        for ax in axes[k]:
            ax.set_xticks([])
            ax.set_yticks([])
    save_figure(figure, path, title)
