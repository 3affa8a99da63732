"""Small, seeded demo data sets in the layouts mmpretrain and mmdet read (real JPEG files)."""
