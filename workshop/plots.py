"""Plots the notebooks share."""

import matplotlib.pyplot as plt
import numpy as np


def image_grid(images, titles=None, ncols=8, cmap="gray", size=1.3, symmetric=False):
    """Show images in a grid; `symmetric` centres the colour scale on zero (for weights)."""
    images = np.asarray(images)
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        limit = np.abs(images[i]).max() if symmetric else None
        ax.imshow(images[i], cmap=cmap, vmin=-limit if symmetric else None, vmax=limit)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig
