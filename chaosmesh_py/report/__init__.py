"""``chaosmesh report``: one self-contained HTML file from run directories and journals."""
