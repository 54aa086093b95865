"""Files -> Documents -> Chunks: loading MD/TXT/HTML/PDF/DOCX and heading-aware chunking (pure)."""
