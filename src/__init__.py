"""tunelab: reproducible hyperparameter studies. The modules here are the doors users and dvc.yaml
run; the packages below them are layers whose imports point down (docs/design.md)."""
