"""Shared, dependency-light pieces of edgemed: errors, model specs and clinical metrics (numpy only)."""
