"""Academic transcripts (FERPA).

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.academic import ACADEMIC_TRANSCRIPTS, AcademicTranscript

transcripts = bind_entity(ACADEMIC_TRANSCRIPTS)

__all__ = [
    "AcademicTranscript",
    "transcripts",
]
