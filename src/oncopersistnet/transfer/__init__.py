"""Transfer to independent datasets: adapt a trained model to another study or cancer type."""
