"""Files and folders given on the command line, expanded to the image files in them."""

from counterfake.imaging import iter_image_files

__all__ = ["iter_image_files"]
