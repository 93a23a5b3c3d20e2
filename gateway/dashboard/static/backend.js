// The admin-only system functions the page calls (docs/dashboard.md, "The page's
// functions"), in one place.

export const FN = {
  tables: "_system/dashboard/tables:list",
  tableData: "_system/cli/tableData",
  indexRange: null,
  insert: null,
  replace: null,
  delete: null,
};
