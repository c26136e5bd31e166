"""editing: edits, feature_blend, directions, spatial, region_transfer, translation, sketch, video, video_io."""
