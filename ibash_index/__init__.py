"""Index folders of DICOM files into a SQL database you can question."""

__version__ = "0.1.0"
