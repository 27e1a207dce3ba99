"""Service: worker pool, systemd notification and the whole-pipeline benchmark."""
