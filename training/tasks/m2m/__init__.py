"""Marker-to-marker (m2m): one sensor's marker mask -> another sensor's, for cross-sensor transfer."""
