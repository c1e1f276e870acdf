// Entry of the custom ECharts 5.6.0 build in ../echarts.min.js (see build.sh): only the
// charts and components the UI uses, exposed as the same global `echarts` as the full build
// (init, registerTheme, graphic.clipRectByRect, ...). Add a module here when a page needs one.
import * as echarts from 'echarts/core';
import { LineChart, BarChart, PieChart, GaugeChart, CustomChart } from 'echarts/charts';
import {
  GridComponent,
  TooltipComponent,
  AxisPointerComponent,
  LegendPlainComponent,
  DataZoomInsideComponent,
  DataZoomSliderComponent,
  MarkLineComponent,
  MarkAreaComponent,
} from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([
  LineChart, BarChart, PieChart, GaugeChart, CustomChart,
  GridComponent, TooltipComponent, AxisPointerComponent, LegendPlainComponent,
  DataZoomInsideComponent, DataZoomSliderComponent, MarkLineComponent, MarkAreaComponent,
  CanvasRenderer,
]);

globalThis.echarts = echarts;
