"""The Qt desktop app (PySide6 + pyqtgraph); it talks to the engine through a worker process."""
