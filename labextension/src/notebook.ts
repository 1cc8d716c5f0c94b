/** What an exercise notebook says about itself: its exercise id and the code to submit. */

/** The part of a notebook model read here (a real `INotebookModel` fits; tests pass plain objects). */
export interface INotebookLike {
  getMetadata(key: string): any;
  cells: Iterable<{ type: string; getMetadata(key: string): any; sharedModel: { getSource(): string } }>;
}

export const METADATA_KEY = 'jupyter_exec';

/** The notebook's exercise id, or null when it is not an exercise notebook. */
export function exerciseId(model: INotebookLike): string | null {
  const meta = model.getMetadata(METADATA_KEY);
  const id = meta && typeof meta === 'object' ? meta.exercise_id : undefined;
  return typeof id === 'string' && id.length > 0 ? id : null;
}

/**
 * The code a submission sends: the `student` code cells if there are any (a student copy),
 * else the `solution` cells (a teacher checking the reference), else the `starter` cells.
 * Cells of one role are joined in notebook order, as the server joins them.
 */
export function collectSubmission(model: INotebookLike): string {
  const byRole: Record<string, string[]> = { student: [], solution: [], starter: [] };
  for (const cell of model.cells) {
    if (cell.type !== 'code') {
      continue;
    }
    const meta = cell.getMetadata(METADATA_KEY);
    const role = meta && typeof meta === 'object' ? meta.role : undefined;
    if (typeof role === 'string' && role in byRole) {
      byRole[role].push(cell.sharedModel.getSource());
    }
  }
  const chosen = byRole.student.length ? byRole.student : byRole.solution.length ? byRole.solution : byRole.starter;
  return chosen.join('\n\n');
}
