"""Answer extraction and equivalence: `grade(response, gold) -> Verdict`."""

from limo_ray.grading.extract import Extraction, extract_choice, extract_final_answer
from limo_ray.grading.grader import GradeMode, Grader, Verdict, default_grader, grade

__all__ = [
    "Extraction",
    "GradeMode",
    "Grader",
    "Verdict",
    "default_grader",
    "extract_choice",
    "extract_final_answer",
    "grade",
]
