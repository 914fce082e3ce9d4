"""``pose3d batch``: folders of clips through the pipeline, resumably, locally or on a Ray cluster."""


