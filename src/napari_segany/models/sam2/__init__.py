"""SAM 2 / 2.1 (Ravi et al. 2024) in pure torch: Hiera image encoder, SAM prompt encoder and
mask decoder with high-resolution skips, memory encoder and memory attention."""
