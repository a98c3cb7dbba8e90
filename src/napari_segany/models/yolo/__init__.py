"""YOLOv8 networks (FastSAM, MobileSAMv2 object-aware detector): blocks, heads, builder, key mapper."""
