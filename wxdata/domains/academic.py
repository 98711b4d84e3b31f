"""Academic transcripts (FERPA).

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.academic import ACADEMIC_TRANSCRIPTS, AcademicTranscript

transcripts = bind_entity(ACADEMIC_TRANSCRIPTS)

__all__ = [
    "AcademicTranscript",
    "transcripts",
]
