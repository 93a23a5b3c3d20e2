// The admin-only system functions the page calls (docs/dashboard.md, "The page's
// functions"), in one place.

export const FN = {
  tables: "_system/dashboard/tables:list",
  page: "_system/dashboard/documents:page",
  insert: "_system/dashboard/documents:insert",
  replace: "_system/dashboard/documents:replace",
  delete: "_system/dashboard/documents:delete",
  functions: "_system/dashboard/functions:list",
  logs: "_system/dashboard/logs:recent",
  health: "_system/dashboard/health:status",
  series: "_system/dashboard/readings:series",
  jobs: "_system/dashboard/scheduler:jobs",
  crons: "_system/dashboard/scheduler:crons",
  cancel: "_system/dashboard/scheduler:cancel",
  replication: "_system/replication:status",
  gateways: "_system/replication:gateways",
  disk: "_system/disk:status",
};

Object.assign(FN, {
  devices: "_system/dashboard/mqtt:devices",
  addDevice: "_system/dashboard/mqtt:addDevice",
  removeDevice: "_system/dashboard/mqtt:removeDevice",
  deadLetters: "_system/dashboard/mqtt:deadLetters",
  publishRules: "_system/dashboard/mqtt:publishRules",
});
