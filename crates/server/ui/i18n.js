// Every visible string of the UI in English and Simplified Chinese, the chosen language
// (persisted in localStorage) and Intl formatters for numbers and twin dates.

const DICT = {
  en: {
    'app.name': 'aifactory',
    'lang.label': 'Language',
    'nav.label': 'Main',
    'nav.plant': 'Plant',
    'nav.schedule': 'Schedule',
    'nav.quality': 'Quality',
    'nav.forecast': 'Forecast',
    'nav.decisions': 'Decisions',
    'nav.assessment': 'Assessment',
    'top.twin': 'Twin clock',
    'top.speed': 'Speed: {x} twin seconds per second',
    'top.running': 'running',
    'top.paused': 'paused',
    'top.live': 'Live updates connected',
    'top.offline': 'Live updates reconnecting',
    'top.logout': 'Log out',
    'top.user': 'Signed in as {user} ({role})',
    'role.viewer': 'viewer', 'role.operator': 'operator', 'role.engineer': 'engineer',
    'role.admin': 'admin', 'role.agent': 'agent',
    'common.loading': 'Loading…',
    'common.refresh': 'Refresh',
    'common.close': 'Close',
    'common.none': 'None',
    'common.yes': 'yes', 'common.no': 'no',
    'common.dismiss': 'Dismiss',
    'common.machine': 'Machine',
    'common.signal': 'Signal',
    'common.product': 'Product',
    'common.time': 'Time',
    'common.kind': 'Kind',
    'common.order': 'Order',
    'common.detail': 'Detail',
    'common.hours': 'h',
    'common.days': 'd',
    'common.noData': 'No data yet.',
    'common.error': 'Error',
    'common.http': 'The server answered {status}',
    'common.network': 'The server could not be reached',
    'common.forbidden': 'Your role ({role}) may only view: running what-ifs and approving need operator, engineer or admin.',

    'login.title': 'Sign in',
    'login.subtitle': 'AI factory operations console',
    'login.user': 'User name',
    'login.password': 'Password',
    'login.submit': 'Sign in',
    'login.busy': 'Signing in…',
    'login.failed': 'Sign-in failed: {error}',
    'login.hint': 'Session stays on this browser until you log out.',

    'state.idle': 'Idle', 'state.busy': 'Running', 'state.down': 'Down',
    'state.maintenance': 'Maintenance', 'state.unknown': 'Unknown',

    'plant.title': 'Plant overview',
    'plant.machines': 'Machines',
    'plant.events': 'Recent events',
    'plant.orders': 'Orders',
    'plant.orders.open': 'Open', 'plant.orders.released': 'Released',
    'plant.orders.completed': 'Completed', 'plant.orders.late': 'Late',
    'plant.utilisation': 'Utilisation by machine',
    'plant.states': 'Machine states',
    'plant.tier': 'Tier {tier}',
    'plant.op': 'op {op}',
    'plant.health': 'Health',
    'plant.util': 'Util.',
    'plant.anomaly': 'Anomaly',
    'plant.since': 'since {t}',
    'plant.noEvents': 'No events yet.',

    'kpi.oee': 'OEE',
    'kpi.availability': 'Availability',
    'kpi.performance': 'Performance',
    'kpi.quality': 'Quality rate',
    'kpi.on_time_delivery': 'On-time delivery',
    'kpi.throughput_per_day': 'Throughput / day',
    'kpi.throughput': 'Throughput',
    'kpi.cost_so_far': 'Cost so far',
    'kpi.total_cost': 'Total cost',
    'kpi.mean_tardiness_h': 'Mean tardiness (h)',
    'kpi.scrap_rate': 'Scrap rate',
    'kpi.energy_kwh': 'Energy (kWh)',
    'kpi.energy_cost': 'Energy cost',
    'kpi.maintenance_cost': 'Maintenance cost',
    'kpi.tardiness_cost': 'Tardiness cost',
    'kpi.downtime_h': 'Downtime (h)',
    'kpi.good_units': 'Good units',
    'kpi.orders_completed': 'Orders completed',
    'kpi.failures': 'Failures',
    'kpi.preventive_maintenance': 'Preventive maintenance',

    'machine.title': 'Machine {id}',
    'machine.health': 'Health',
    'machine.rul': 'Remaining useful life',
    'machine.rulNone': 'not estimated',
    'machine.utilisation': 'Utilisation',
    'machine.failures': 'Failures',
    'machine.maintenances': 'Maintenances',
    'machine.anomalyScore': 'Anomaly score',
    'machine.workCentre': 'Work centre',
    'machine.current': 'Current job',
    'machine.telemetry': 'Telemetry',
    'machine.range': 'Range',
    'machine.range.1h': '1 h', 'machine.range.6h': '6 h', 'machine.range.24h': '24 h', 'machine.range.7d': '7 d',
    'machine.anomalies': 'Anomalies',
    'machine.events': 'Machine events',
    'machine.score': 'Score',
    'machine.back': '← Plant',
    'machine.mean': 'mean', 'machine.min': 'min', 'machine.max': 'max', 'machine.value': 'value',
    'machine.bucket': 'Resolution: {b}',
    'machine.bucket.raw': 'raw samples', 'machine.bucket.minute': 'per-minute buckets', 'machine.bucket.hour': 'per-hour buckets',
    'machine.noSignals': 'This machine streams no signals.',

    'schedule.title': 'Production schedule',
    'schedule.gantt': 'Gantt chart',
    'schedule.planned': 'Planned {t}',
    'schedule.decision': 'Decision',
    'schedule.makespan': 'Makespan',
    'schedule.tardiness': 'Weighted tardiness',
    'schedule.lateJobs': 'Late jobs',
    'schedule.bars': 'Operations',
    'schedule.noPlan': 'No plan yet: the scheduler has not planned.',
    'schedule.job': 'Job', 'schedule.op': 'Operation', 'schedule.start': 'Start', 'schedule.end': 'End',
    'schedule.duration': 'Duration',
    'schedule.work': 'work', 'schedule.service': 'service',
    'schedule.now': 'now',
    'whatif.title': 'What-if analysis',
    'whatif.mode': 'Scenario',
    'whatif.down': 'Machine down',
    'whatif.rush': 'Rush order',
    'whatif.machine': 'Machine',
    'whatif.hours': 'Down for (hours)',
    'whatif.product': 'Product',
    'whatif.quantity': 'Quantity',
    'whatif.due': 'Due in (hours)',
    'whatif.run': 'Run what-if',
    'whatif.running': 'Re-planning…',
    'whatif.result': 'Proposal {id}',
    'whatif.hint': 'Run a what-if to see the re-planned schedule as a proposal to approve or reject.',
    'whatif.before': 'Current plan',
    'whatif.after': 'Proposed plan',
    'whatif.change': 'Change',
    'whatif.metric': 'Measure',
    'whatif.proposed': 'Proposed Gantt chart',
    'proposal.approve': 'Approve',
    'proposal.reject': 'Reject',
    'proposal.status': 'Status',
    'proposal.pending': 'pending', 'proposal.approved': 'approved', 'proposal.rejected': 'rejected',
    'proposal.decided': '{status} by {user}',
    'proposal.decision': 'Ledger decision {id}',
    'proposals.title': 'Proposals',
    'proposals.id': 'Proposal', 'proposals.kind': 'Kind', 'proposals.summary': 'Summary',
    'proposals.created': 'Created', 'proposals.by': 'By', 'proposals.decidedBy': 'Decided by',
    'proposals.none': 'No proposals yet.',

    'quality.title': 'Statistical process control',
    'quality.mean': 'X̄ chart (subgroup mean)',
    'quality.range': 'R chart (subgroup range)',
    'quality.subgroup': 'Subgroup size {n}',
    'quality.ucl': 'UCL', 'quality.lcl': 'LCL', 'quality.cl': 'CL',
    'quality.violations': 'Rule violations',
    'quality.noViolations': 'No rule violations: the process is in control.',
    'quality.points': 'Subgroups',
    'quality.rule': 'Rules',
    'quality.inControl': 'in control',
    'quality.outOfControl': '{n} out-of-control points',

    'forecast.title': 'Demand forecast',
    'forecast.history': 'Demand (history)',
    'forecast.mean': 'Forecast',
    'forecast.band': '{p} % interval',
    'forecast.lo': 'Low', 'forecast.hi': 'High',
    'forecast.day': 'Day',
    'forecast.quantity': 'Quantity',
    'forecast.table': 'Forecast by day',
    'forecast.horizon': 'Horizon',
    'forecast.total': 'Forecast total',
    'forecast.next': 'Next day',

    'decisions.title': 'Decision ledger',
    'decisions.filterSkill': 'Skill',
    'decisions.filterStage': 'Stage',
    'decisions.filterBy': 'Executed by',
    'decisions.filterText': 'Search',
    'decisions.textPlaceholder': 'id, model, output…',
    'decisions.all': 'All',
    'decisions.limit': 'Load',
    'decisions.shown': '{n} of {total} decisions',
    'decisions.id': 'ID', 'decisions.at': 'Time', 'decisions.skill': 'Skill', 'decisions.stage': 'Stage',
    'decisions.model': 'Model', 'decisions.confidence': 'Confidence', 'decisions.executedBy': 'Executed by',
    'decisions.outcome': 'Outcome', 'decisions.inputs': 'Inputs',
    'decisions.output': 'Output',
    'decisions.detail': 'Decision {id}',
    'decisions.pick': 'Select a row to see its output.',
    'decisions.none': 'No decisions match.',
    'decisions.success': 'met', 'decisions.failure': 'missed', 'decisions.measured': 'measured',
    'by.auto': 'auto', 'by.human': 'human', 'by.agent': 'agent', 'by.none': 'advice only',
    'stage.design': 'Design', 'stage.testing': 'Testing', 'stage.production': 'Production',
    'stage.management': 'Management', 'stage.sales': 'Sales',

    'assess.title': 'Tier assessment',
    'assess.tier': 'Tier',
    'assess.tier0': 'Not yet an AI factory',
    'assess.tier1': 'AI in selected scenarios',
    'assess.tier2': 'Coordinated decisions across workflows',
    'assess.tier3': 'Data-driven closed loop over the production cycle',
    'assess.depth': 'Depth by lifecycle stage',
    'assess.depth0': 'none', 'assess.depth1': 'AI scenario', 'assess.depth2': 'coordinated', 'assess.depth3': 'closed loop',
    'assess.scenarios': 'Live scenarios',
    'assess.scenarioShare': 'Scenario share',
    'assess.streamingShare': 'Machines streaming',
    'assess.missingNext': 'What is missing for the next tier',
    'assess.atTop': 'Nothing: the top tier is reached.',
    'assess.evidence': 'Evidence',
    'assess.missing': 'Missing',
    'assess.links': 'Cross-stage links',
    'assess.link': 'Link', 'assess.description': 'Description', 'assess.citations': 'Citations',
    'assess.skills': 'Skills', 'assess.met': 'Met',
    'assess.decisions': 'Decisions', 'assess.executed': 'Executed', 'assess.executed_auto': 'Executed automatically',
    'assess.with_outcome': 'With measured outcome', 'assess.model_updates': 'Model updates',
    'assess.live_scenarios': 'Live scenarios', 'assess.stageLinks': 'Links',
    'assess.stageDepth': 'Depth {d} / 3',
  },
  zh: {
    'app.name': 'aifactory',
    'lang.label': '语言',
    'nav.label': '主菜单',
    'nav.plant': '工厂总览',
    'nav.schedule': '排产',
    'nav.quality': '质量',
    'nav.forecast': '需求预测',
    'nav.decisions': '决策台账',
    'nav.assessment': '等级评估',
    'top.twin': '孪生时钟',
    'top.speed': '速度：每秒 {x} 孪生秒',
    'top.running': '运行中',
    'top.paused': '已暂停',
    'top.live': '实时数据已连接',
    'top.offline': '实时数据重连中',
    'top.logout': '退出登录',
    'top.user': '当前用户 {user}（{role}）',
    'role.viewer': '查看者', 'role.operator': '操作员', 'role.engineer': '工程师',
    'role.admin': '管理员', 'role.agent': '智能体',
    'common.loading': '加载中…',
    'common.refresh': '刷新',
    'common.close': '关闭',
    'common.none': '无',
    'common.yes': '是', 'common.no': '否',
    'common.dismiss': '关闭',
    'common.machine': '设备',
    'common.signal': '信号',
    'common.product': '产品',
    'common.time': '时间',
    'common.kind': '类型',
    'common.order': '订单',
    'common.detail': '详情',
    'common.hours': '小时',
    'common.days': '天',
    'common.noData': '暂无数据。',
    'common.error': '错误',
    'common.http': '服务器返回 {status}',
    'common.network': '无法连接服务器',
    'common.forbidden': '您的角色（{role}）只能查看：运行假设分析和审批需要操作员、工程师或管理员角色。',

    'login.title': '登录',
    'login.subtitle': 'AI 工厂运营控制台',
    'login.user': '用户名',
    'login.password': '密码',
    'login.submit': '登录',
    'login.busy': '正在登录…',
    'login.failed': '登录失败：{error}',
    'login.hint': '退出登录前，会话保留在此浏览器中。',

    'state.idle': '空闲', 'state.busy': '运行', 'state.down': '故障停机',
    'state.maintenance': '维护', 'state.unknown': '未知',

    'plant.title': '工厂总览',
    'plant.machines': '设备',
    'plant.events': '最近事件',
    'plant.orders': '订单',
    'plant.orders.open': '未完成', 'plant.orders.released': '已下达',
    'plant.orders.completed': '已完成', 'plant.orders.late': '延期',
    'plant.utilisation': '设备利用率',
    'plant.states': '设备状态',
    'plant.tier': '等级 {tier}',
    'plant.op': '工序 {op}',
    'plant.health': '健康度',
    'plant.util': '利用率',
    'plant.anomaly': '异常',
    'plant.since': '自 {t}',
    'plant.noEvents': '暂无事件。',

    'kpi.oee': '总体设备效率 OEE',
    'kpi.availability': '时间开动率',
    'kpi.performance': '性能开动率',
    'kpi.quality': '合格品率',
    'kpi.on_time_delivery': '准时交付率',
    'kpi.throughput_per_day': '日产出',
    'kpi.throughput': '产出',
    'kpi.cost_so_far': '累计成本',
    'kpi.total_cost': '总成本',
    'kpi.mean_tardiness_h': '平均拖期（小时）',
    'kpi.scrap_rate': '报废率',
    'kpi.energy_kwh': '能耗（千瓦时）',
    'kpi.energy_cost': '能源成本',
    'kpi.maintenance_cost': '维护成本',
    'kpi.tardiness_cost': '拖期成本',
    'kpi.downtime_h': '停机时间（小时）',
    'kpi.good_units': '合格品数',
    'kpi.orders_completed': '完成订单数',
    'kpi.failures': '故障次数',
    'kpi.preventive_maintenance': '预防性维护次数',

    'machine.title': '设备 {id}',
    'machine.health': '健康度',
    'machine.rul': '剩余使用寿命',
    'machine.rulNone': '未估计',
    'machine.utilisation': '利用率',
    'machine.failures': '故障次数',
    'machine.maintenances': '维护次数',
    'machine.anomalyScore': '异常分数',
    'machine.workCentre': '工作中心',
    'machine.current': '当前任务',
    'machine.telemetry': '遥测数据',
    'machine.range': '时间范围',
    'machine.range.1h': '1 小时', 'machine.range.6h': '6 小时', 'machine.range.24h': '24 小时', 'machine.range.7d': '7 天',
    'machine.anomalies': '异常检测',
    'machine.events': '设备事件',
    'machine.score': '分数',
    'machine.back': '← 工厂总览',
    'machine.mean': '均值', 'machine.min': '最小值', 'machine.max': '最大值', 'machine.value': '数值',
    'machine.bucket': '粒度：{b}',
    'machine.bucket.raw': '原始采样', 'machine.bucket.minute': '按分钟聚合', 'machine.bucket.hour': '按小时聚合',
    'machine.noSignals': '该设备没有遥测信号。',

    'schedule.title': '生产排程',
    'schedule.gantt': '甘特图',
    'schedule.planned': '排程时间 {t}',
    'schedule.decision': '决策',
    'schedule.makespan': '完工时间',
    'schedule.tardiness': '加权拖期',
    'schedule.lateJobs': '延期工单',
    'schedule.bars': '工序数',
    'schedule.noPlan': '暂无排程：排产尚未运行。',
    'schedule.job': '任务', 'schedule.op': '工序', 'schedule.start': '开始', 'schedule.end': '结束',
    'schedule.duration': '时长',
    'schedule.work': '加工', 'schedule.service': '维护',
    'schedule.now': '当前',
    'whatif.title': '假设分析（What-if）',
    'whatif.mode': '场景',
    'whatif.down': '设备停机',
    'whatif.rush': '紧急插单',
    'whatif.machine': '设备',
    'whatif.hours': '停机时长（小时）',
    'whatif.product': '产品',
    'whatif.quantity': '数量',
    'whatif.due': '交期（小时后）',
    'whatif.run': '运行假设分析',
    'whatif.running': '重新排产中…',
    'whatif.result': '方案 {id}',
    'whatif.hint': '运行假设分析后，重新排产的结果将作为待审批方案显示在此处。',
    'whatif.before': '当前排程',
    'whatif.after': '建议排程',
    'whatif.change': '变化',
    'whatif.metric': '指标',
    'whatif.proposed': '建议排程甘特图',
    'proposal.approve': '批准',
    'proposal.reject': '驳回',
    'proposal.status': '状态',
    'proposal.pending': '待审批', 'proposal.approved': '已批准', 'proposal.rejected': '已驳回',
    'proposal.decided': '{status}（{user}）',
    'proposal.decision': '台账决策 {id}',
    'proposals.title': '方案列表',
    'proposals.id': '方案', 'proposals.kind': '类型', 'proposals.summary': '摘要',
    'proposals.created': '创建时间', 'proposals.by': '提出人', 'proposals.decidedBy': '审批人',
    'proposals.none': '暂无方案。',

    'quality.title': '统计过程控制（SPC）',
    'quality.mean': '均值控制图（X̄ 图）',
    'quality.range': '极差控制图（R 图）',
    'quality.subgroup': '子组容量 {n}',
    'quality.ucl': '上控制限', 'quality.lcl': '下控制限', 'quality.cl': '中心线',
    'quality.violations': '判异规则违例',
    'quality.noViolations': '无违例：过程受控。',
    'quality.points': '子组数',
    'quality.rule': '规则',
    'quality.inControl': '受控',
    'quality.outOfControl': '{n} 个失控点',

    'forecast.title': '需求预测',
    'forecast.history': '历史需求',
    'forecast.mean': '预测值',
    'forecast.band': '{p}% 预测区间',
    'forecast.lo': '下限', 'forecast.hi': '上限',
    'forecast.day': '日期',
    'forecast.quantity': '数量',
    'forecast.table': '逐日预测',
    'forecast.horizon': '预测期',
    'forecast.total': '预测合计',
    'forecast.next': '次日预测',

    'decisions.title': '决策台账',
    'decisions.filterSkill': '技能',
    'decisions.filterStage': '环节',
    'decisions.filterBy': '执行方',
    'decisions.filterText': '搜索',
    'decisions.textPlaceholder': '编号、模型、输出…',
    'decisions.all': '全部',
    'decisions.limit': '加载条数',
    'decisions.shown': '显示 {n} / {total} 条决策',
    'decisions.id': '编号', 'decisions.at': '时间', 'decisions.skill': '技能', 'decisions.stage': '环节',
    'decisions.model': '模型', 'decisions.confidence': '置信度', 'decisions.executedBy': '执行方',
    'decisions.outcome': '结果', 'decisions.inputs': '输入',
    'decisions.output': '输出',
    'decisions.detail': '决策 {id}',
    'decisions.pick': '点击一行查看其输出。',
    'decisions.none': '没有符合条件的决策。',
    'decisions.success': '达成', 'decisions.failure': '未达成', 'decisions.measured': '已测量',
    'by.auto': '自动', 'by.human': '人工', 'by.agent': '智能体', 'by.none': '仅建议',
    'stage.design': '研发设计', 'stage.testing': '中试验证', 'stage.production': '生产制造',
    'stage.management': '经营管理', 'stage.sales': '营销服务',

    'assess.title': '等级评估',
    'assess.tier': '等级',
    'assess.tier0': '尚未达到 AI 工厂等级',
    'assess.tier1': '重点场景应用 AI',
    'assess.tier2': '跨流程协同决策',
    'assess.tier3': '全生产周期数据驱动闭环',
    'assess.depth': '各环节深度',
    'assess.depth0': '无', 'assess.depth1': 'AI 场景', 'assess.depth2': '协同', 'assess.depth3': '闭环',
    'assess.scenarios': '上线场景',
    'assess.scenarioShare': '场景覆盖率',
    'assess.streamingShare': '设备数据接入率',
    'assess.missingNext': '晋级下一等级尚缺',
    'assess.atTop': '无：已达最高等级。',
    'assess.evidence': '证据',
    'assess.missing': '缺少',
    'assess.links': '跨环节联动',
    'assess.link': '联动', 'assess.description': '说明', 'assess.citations': '引用次数',
    'assess.skills': '技能', 'assess.met': '达成',
    'assess.decisions': '决策数', 'assess.executed': '已执行', 'assess.executed_auto': '自动执行',
    'assess.with_outcome': '有实测结果', 'assess.model_updates': '模型更新',
    'assess.live_scenarios': '上线场景', 'assess.stageLinks': '联动',
    'assess.stageDepth': '深度 {d} / 3',
  },
};

const LOCALES = { en: 'en-GB', zh: 'zh-CN' };
const KEY = 'aifactory.lang';

let lang = (() => {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved && DICT[saved]) return saved;
  } catch { /* storage may be blocked */ }
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
})();

export const languages = [['en', 'English'], ['zh', '简体中文']];

export function getLang() { return lang; }
export function locale() { return LOCALES[lang]; }

export function setLang(l) {
  if (!DICT[l]) return;
  lang = l;
  try { localStorage.setItem(KEY, l); } catch { /* ignore */ }
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}
setLang(lang);

/** The string for `key` in the chosen language, `{name}` replaced from `vars`. */
export function t(key, vars) {
  let s = DICT[lang][key] ?? DICT.en[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** Whether the dictionary has `key` (for open-ended names such as KPI keys). */
export function has(key) { return key in DICT.en; }

/** A label for a KPI key: the dictionary's, or the key made readable. */
export function kpiLabel(key) {
  return has(`kpi.${key}`) ? t(`kpi.${key}`) : key.replace(/_/g, ' ');
}

const cache = new Map();
function nf(opts) {
  const k = lang + JSON.stringify(opts);
  if (!cache.has(k)) cache.set(k, new Intl.NumberFormat(locale(), opts));
  return cache.get(k);
}
function df(opts) {
  const k = 'd' + lang + JSON.stringify(opts);
  if (!cache.has(k)) cache.set(k, new Intl.DateTimeFormat(locale(), { timeZone: 'UTC', ...opts }));
  return cache.get(k);
}

const dash = '—';
const finite = (x) => typeof x === 'number' && Number.isFinite(x);

export const fmt = {
  num(x, digits = 1) {
    return finite(x) ? nf({ maximumFractionDigits: digits }).format(x) : dash;
  },
  int(x) { return finite(x) ? nf({ maximumFractionDigits: 0 }).format(x) : dash; },
  pct(x, digits = 1) {
    return finite(x) ? nf({ style: 'percent', maximumFractionDigits: digits, minimumFractionDigits: digits }).format(x) : dash;
  },
  money(x) { return finite(x) ? nf({ maximumFractionDigits: 0 }).format(x) : dash; },
  hours(x) { return finite(x) ? `${nf({ maximumFractionDigits: 1 }).format(x)} ${t('common.hours')}` : dash; },
  /** A twin instant (RFC 3339 string or milliseconds) as date and time, UTC. */
  dateTime(v) {
    const d = toDate(v);
    return d ? df({ year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d) : dash;
  },
  dateTimeSec(v) {
    const d = toDate(v);
    return d ? df({ year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(d) : dash;
  },
  time(v) {
    const d = toDate(v);
    return d ? df({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d) : dash;
  },
  shortDateTime(v) {
    const d = toDate(v);
    return d ? df({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d) : dash;
  },
  date(v) {
    const d = toDate(v);
    return d ? df({ year: 'numeric', month: 'short', day: 'numeric', weekday: 'short' }).format(d) : dash;
  },
  shortDate(v) {
    const d = toDate(v);
    return d ? df({ month: 'short', day: 'numeric' }).format(d) : dash;
  },
};

/** A Date from an RFC 3339 string, a `YYYY-MM-DD` day or milliseconds since 1970; null otherwise. */
export function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  const d = v instanceof Date ? v : new Date(typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
  return Number.isNaN(d.getTime()) ? null : d;
}
export function toMs(v) { const d = toDate(v); return d ? d.getTime() : NaN; }
