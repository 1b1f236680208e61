"""syftflwr transport over Google Drive."""
