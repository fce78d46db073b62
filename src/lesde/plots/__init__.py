"""Figures: ``plot_*(..., ax=None) -> Axes`` functions, no computation, no ``plt.show()``."""
