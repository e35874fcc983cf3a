"""Stage 1, corpora: the corpus contract, manifests, folds, audio, labels, balanced sets, EmoBox import."""
