"""Skills (PROTOCOL §15): installing them, loading markdown skills, and offering them to
agents in the system prompt and through the ``read_skill`` tool."""

from ._markdown import MarkdownSkill as MarkdownSkill
from ._service import SkillsService as SkillsService
from ._skill_md import NAME_PATTERN as NAME_PATTERN
from ._tool import READ_SKILL as READ_SKILL
