/**
 * What an exercise notebook says about itself: its exercise id, each cell's role, and which
 * cells a submission sends.
 */

/** A cell as read here (a real `ICellModel` fits; tests pass plain objects). */
export interface ICellLike {
  type: string;
  getMetadata(key: string): any;
  sharedModel: { getSource(): string };
}

/** The part of a notebook model read here (a real `INotebookModel` fits). */
export interface INotebookLike {
  getMetadata(key: string): any;
  cells: Iterable<ICellLike>;
}

export const METADATA_KEY = 'jupyter_exec';
/** The roles of the exercise format (`jupyter_exec.role` in cell metadata). */
export const ROLES = ['prompt', 'starter', 'solution', 'student'] as const;
export type Role = (typeof ROLES)[number];

/** The notebook's exercise id, or null when it is not an exercise notebook. */
export function exerciseId(model: INotebookLike): string | null {
  const meta = model.getMetadata(METADATA_KEY);
  const id = meta && typeof meta === 'object' ? meta.exercise_id : undefined;
  return typeof id === 'string' && id.length > 0 ? id : null;
}

/** Whether the notebook is a released student copy. */
export function isStudentCopy(model: INotebookLike): boolean {
  const meta = model.getMetadata(METADATA_KEY);
  return !!(meta && typeof meta === 'object' && meta.student_copy === true);
}

/** The cell's exercise role, or null for an unmarked cell. */
export function cellRole(cell: ICellLike): string | null {
  const meta = cell.getMetadata(METADATA_KEY);
  const role = meta && typeof meta === 'object' ? meta.role : undefined;
  return typeof role === 'string' ? role : null;
}

/** Jupyter's own `editable: false`: a cell the student cannot change. */
export function isReadOnly(cell: ICellLike): boolean {
  return cell.getMetadata('editable') === false;
}

/**
 * The indexes (in notebook order) of the code cells a submission sends: every code cell the
 * student can edit — `student` cells and unmarked cells the student added — never prompt or
 * read-only cells. A notebook that still has `starter` cells (not released) sends them as the
 * student's. `solution` cells are sent only in instructor mode, in place of the starters, so an
 * instructor can check the reference; a student's Submit never grades them.
 */
export function gradedCellIndexes(model: INotebookLike, instructor = false): number[] {
  const cells = [...model.cells];
  const reference = instructor && cells.some(c => c.type === 'code' && cellRole(c) === 'solution');
  const sent = new Set<string | null>([null, 'student', reference ? 'solution' : 'starter']);
  const indexes: number[] = [];
  cells.forEach((cell, index) => {
    if (cell.type === 'code' && !isReadOnly(cell) && sent.has(cellRole(cell))) {
      indexes.push(index);
    }
  });
  return indexes;
}

/** The code a submission sends (see `gradedCellIndexes`), and the cells it came from. */
export function collectSubmission(model: INotebookLike, instructor = false): { code: string; cells: number[] } {
  const cells = [...model.cells];
  const indexes = gradedCellIndexes(model, instructor);
  return { code: indexes.map(i => cells[i].sharedModel.getSource()).join('\n\n'), cells: indexes };
}

/** A short name of a cell for people: its number and first line, e.g. `cell 2 (def add(a, b):)`. */
export function describeCell(index: number, source: string): string {
  const first =
    source
      .split('\n')
      .find(line => line.trim().length > 0)
      ?.trim() ?? '';
  const shown = first.length > 40 ? `${first.slice(0, 39)}…` : first;
  return shown ? `cell ${index + 1} (${shown})` : `cell ${index + 1} (empty)`;
}
