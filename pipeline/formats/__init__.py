"""Raw sources -> the canonical interim tables (interim.py), one reader module per source; raw image access (images.py)."""
