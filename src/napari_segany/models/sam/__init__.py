"""Segment Anything (SAM 1) networks in pure torch: ViT encoder, prompt encoder,
two-way transformer, mask decoder, builders and the checkpoint key mapper."""
