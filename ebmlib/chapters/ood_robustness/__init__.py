"""Chapter 05: out-of-distribution detection by energy (``ood``) and adversarial robustness (``adversarial``)."""
