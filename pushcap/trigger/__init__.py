"""Redis-triggered captures from the ring, delivered to CloudShark or a folder."""
