"""Profiles of bedside and embedded deployment targets."""
